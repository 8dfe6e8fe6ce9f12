package notice

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning"
)

// createCuratorCopies creates, for each account among accounts whose person
// is an adult under curatelle with a curator in the registry, the curator's
// copy of the notice (NoticeCopy, in the account's round): by email when
// the curator has an address, by letter otherwise, never an addressless
// letter. The person is told by their own notice, as anybody; the copy goes
// out once that notice is out, stating the account's deadline, with the same
// code — either of them may oppose with it. Letters' departments are added
// to groups.
func createCuratorCopies(ctx context.Context, tx pgx.Tx, waveID int64, accounts []int64, groups letterGroups, now time.Time) error {
	if len(accounts) == 0 {
		return nil
	}
	curators, err := curatorTargetsOf(ctx, tx, accounts, now)
	if err != nil {
		return err
	}
	var ids []int64
	var channels []string
	var depts []*string
	for i, t := range curators {
		switch {
		case t.Email != "":
			ids, channels, depts = append(ids, t.AccountID), append(channels, provisioning.ChannelEmail), append(depts, nil)
		case t.Deliverable():
			ids, channels, depts = append(ids, t.AccountID), append(channels, provisioning.ChannelLetter), append(depts, &curators[i].Department)
			groups.add(waveID, t.Department)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO notice (account_id, kind, channel, department, seq)
		SELECT u.acc, 'copy', u.channel::notice_channel, u.dept, a.notice_round FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(acc, channel, dept)
		JOIN account a ON a.id = u.acc
		WHERE NOT EXISTS (SELECT 1 FROM notice n WHERE n.account_id = u.acc AND n.kind = 'copy' AND n.seq = a.notice_round)`,
		ids, channels, depts); err != nil {
		return fmt.Errorf("creating curators' copies: %w", err)
	}
	return nil
}

// curatorTargetsOf reads the curators of the accounts under curatelle among
// accounts, as the recipients of their copies.
func curatorTargetsOf(ctx context.Context, tx pgx.Tx, accounts []int64, now time.Time) ([]provisioning.Target, error) {
	rows, err := tx.Query(ctx, curatorTargets+` WHERE a.id = ANY($1) AND p.protection = 'curatelle' AND g.id IS NOT NULL`, accounts, provisioning.Day(now))
	if err != nil {
		return nil, fmt.Errorf("finding curators: %w", err)
	}
	curators, err := pgx.CollectRows(rows, ScanTarget)
	if err != nil {
		return nil, fmt.Errorf("finding curators: %w", err)
	}
	return curators, nil
}

// curatorsOf gives, for each account under curatelle, its curator as the
// recipient of a copy's letter.
func curatorsOf(ctx context.Context, tx pgx.Tx, accounts []int64, now time.Time) (map[int64]recipient, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	ts, err := curatorTargetsOf(ctx, tx, accounts, now)
	return recipientsFrom(ts), err
}
