package optout_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// screenshotDir is where a person can look at each step: var/screenshots.
func screenshotDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "var", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make test installs Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1000, 1100))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

func shot(t *testing.T, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(screenshotDir(t), name+".png"), buf, 0o644)
	})
}

func TestBrowserOppositionByKeyboard(t *testing.T) {
	pool := testdb.Pool(t)
	hs := notified(t, pool, 20, time.Now().Add(48*time.Hour))
	srv := newHTTPServer(t, optout.NewHandler(newService(pool)))
	ctx := browser(t)
	h := hs[0]
	birth := h.birth[8:10] + "/" + h.birth[5:7] + "/" + h.birth[:4]

	// Wrong pair: the generic message, tied to the field.
	var alert, invalid string
	var ok bool
	err := chromedp.Run(ctx,
		chromedp.Navigate(srv+"/"),
		shot(t, "1-formulaire"),
		chromedp.Focus("#code", chromedp.ByQuery),
		chromedp.KeyEvent(h.code.String()),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent("01/01/1900"),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#erreur", chromedp.ByQuery),
		chromedp.Text("#erreur", &alert, chromedp.ByQuery),
		chromedp.AttributeValue("#code", "aria-invalid", &invalid, &ok, chromedp.ByQuery),
		shot(t, "2-erreur"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(alert, "Le code ou la date de naissance est incorrect") || invalid != "true" {
		t.Fatalf("wrong pair: alert %q, aria-invalid %q", alert, invalid)
	}

	// Right pair, keyboard only: Tab to each field, Enter to submit.
	var who, ref string
	err = chromedp.Run(ctx,
		chromedp.Navigate(srv+"/"),
		chromedp.Focus("#code", chromedp.ByQuery),
		chromedp.KeyEvent(strings.ToLower(string(h.code))),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(birth),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#confirmer", chromedp.ByQuery),
		chromedp.Text("#titulaire", &who, chromedp.ByQuery),
		shot(t, "3-confirmation"),
		chromedp.Focus("#confirmer", chromedp.ByQuery),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#reference", chromedp.ByQuery),
		chromedp.Text("#reference", &ref, chromedp.ByQuery),
		shot(t, "4-recu"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(who, "*") || !strings.HasPrefix(ref, "OPP-") {
		t.Fatalf("confirmation showed %q, receipt %q", who, ref)
	}
	var state string
	pool.QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, h.id).Scan(&state)
	if state != "opposed" {
		t.Fatalf("account is %s after the receipt", state)
	}
}

// The holder activates their profile from the form, in the same two steps
// as an opposition: code and birth date, then the choice.
func TestBrowserEarlyActivation(t *testing.T) {
	pool := testdb.Pool(t)
	hs := notified(t, pool, 5, time.Now().Add(48*time.Hour))
	srv := newHTTPServer(t, optout.NewHandler(newService(pool)))
	ctx := browser(t)
	h := hs[0]
	var msg string
	err := chromedp.Run(ctx,
		chromedp.Navigate(srv+"/"),
		chromedp.SendKeys("#code", h.code.String(), chromedp.ByQuery),
		chromedp.SendKeys("#naissance", h.birth[8:10]+"/"+h.birth[5:7]+"/"+h.birth[:4], chromedp.ByQuery),
		chromedp.Submit("#code", chromedp.ByQuery),
		chromedp.WaitVisible("#activer", chromedp.ByQuery),
		chromedp.Click("#activer", chromedp.ByQuery),
		chromedp.WaitVisible("#active", chromedp.ByQuery),
		chromedp.Text("#active", &msg, chromedp.ByQuery),
		shot(t, "5-activation"),
	)
	if err != nil {
		t.Fatal(err)
	}
	var state string
	pool.QueryRow(context.Background(), `SELECT state FROM account WHERE id = $1`, h.id).Scan(&state) //nolint:errcheck
	if !strings.Contains(msg, "est activé") || state != "active" {
		t.Fatalf("page said %q, account is %s", msg, state)
	}
}

// The challenge a waiting address is offered is solved by the widget in the
// page, under the form's Content-Security-Policy, and lets the holder
// through at once: the widget and our server speak the same protocol. The
// waiting page has no accessibility violation (axe-core).
func TestBrowserSolvesTheChallengeInsteadOfWaiting(t *testing.T) {
	pool := testdb.Pool(t)
	hs := notified(t, pool, 5, time.Now().Add(48*time.Hour))
	svc := newService(pool)
	svc.Limiter.BaseDelay = 10 * time.Minute // the browser starts well within the wait
	srv := newHTTPServer(t, optout.NewHandler(svc))
	for i := range 12 {
		if st, _ := formPost(t, srv, "/verifier", url.Values{"code": {key.Derive(int64(710_000 + i)).String()}, "birth_date": {"1970-01-01"}}); st == http.StatusTooManyRequests {
			break
		}
	}
	ctx := browser(t)
	h := hs[0]
	if err := chromedp.Run(ctx, chromedp.Navigate(srv+"/"),
		chromedp.SendKeys("#code", h.code.String(), chromedp.ByQuery),
		chromedp.SendKeys("#naissance", h.birth[8:10]+"/"+h.birth[5:7]+"/"+h.birth[:4], chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	// Each submission waits for the page it loads.
	resp, err := chromedp.RunResponse(ctx, chromedp.Submit("#code", chromedp.ByQuery))
	if err != nil || resp.Status != http.StatusTooManyRequests {
		t.Fatalf("the holder behind the guesser: %v %v, want 429", err, resp)
	}
	var alert, proof string
	err = chromedp.Run(ctx,
		chromedp.Text("#erreur", &alert, chromedp.ByQuery),
		chromedp.Poll(`(document.querySelector('input[name="altcha"]') || {}).value || ""`, &proof, chromedp.WithPollingTimeout(30*time.Second)),
		shot(t, "6-defi"),
		chromedp.ActionFunc(func(ctx context.Context) error {
			v, err := axeViolations(ctx)
			if err == nil && len(v) > 0 {
				t.Errorf("axe-core finds %d violation(s) on the waiting page:\n  %s", len(v), strings.Join(v, "\n  "))
			}
			return err
		}))
	if err != nil || !strings.Contains(alert, "réessayer dans") || proof == "" {
		t.Fatalf("%v: the waiting page said %q, the widget posted %d bytes", err, alert, len(proof))
	}
	resp, err = chromedp.RunResponse(ctx, chromedp.Submit("#code", chromedp.ByQuery))
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("the holder with the widget's solution: %v %v, want 200", err, resp)
	}
	if err := chromedp.Run(ctx, chromedp.WaitReady("#confirmer", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
}
