package optout_test

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

var noJobs provisioning.EnqueueFunc = func(context.Context, pgx.Tx, []provisioning.Chunk) error { return nil }
