package audit_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning/audit"
)

// testAuditKey is the ENS_AUDIT_KEY of every test here, as in production.
var testAuditKey = bytes.Repeat([]byte{0xa7}, 32)

func TestMain(m *testing.M) {
	audit.SetKey(testAuditKey)
	os.Exit(testdb.Main(m))
}
