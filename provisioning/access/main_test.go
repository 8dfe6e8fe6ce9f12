package access

import (
	"os"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
