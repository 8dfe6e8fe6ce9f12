package optout_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// axe-core, pinned (make assets): the accessibility engine RGAA audits use.
//
//go:embed testdata/axe.min.js
var axeSource string

// axeViolations runs axe-core on the page the browser shows and returns
// its violations, one line each (rule, impact, first target).
func axeViolations(ctx context.Context) ([]string, error) {
	var res struct {
		Violations []struct {
			ID, Impact string
			Nodes      []struct{ Target []string }
		}
	}
	var raw string
	err := chromedp.Run(ctx,
		chromedp.Evaluate(axeSource, nil),
		chromedp.Evaluate(`axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r))`, &raw,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		return nil, err
	}
	var out []string
	for _, v := range res.Violations {
		target := ""
		if len(v.Nodes) > 0 && len(v.Nodes[0].Target) > 0 {
			target = v.Nodes[0].Target[0]
		}
		out = append(out, fmt.Sprintf("%s (%s) at %s, %d node(s)", v.ID, v.Impact, target, len(v.Nodes)))
	}
	return out, nil
}

// The public form is in the State's design system, served from the binary
// (stylesheet, Marianne fonts, icons: no third-party host, the CSP allows
// only the site itself), and axe-core finds no violation on a phone (390
// px) or a desktop (1280 px), at every step: the form, its error, the
// confirmation, the receipt and the withdrawal. Screenshots of each land in
// var/screenshots (and, refreshed by hand, in docs/screenshots). Before, the form looked like
// no public service (its own stylesheet, no State block).
func TestFormInTheStatesDesignSystemIsAccessible(t *testing.T) {
	pool := testdb.Pool(t)
	hs := notified(t, pool, 4, time.Now().Add(48*time.Hour))
	srv := newHTTPServer(t, optout.NewHandler(newService(pool)))

	// The design system is served from the binary, and nothing else is
	// allowed to load.
	resp, err := http.Get(srv + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(string(page), `href="/dsfr/dsfr.min.css"`) || !strings.Contains(string(page), "fr-header") ||
		!strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "http") {
		t.Fatalf("the form does not use the embedded DSFR, or its CSP lets other hosts in: %s", csp)
	}
	for _, asset := range []string{"/dsfr/dsfr.min.css", "/dsfr/fonts/Marianne-Regular.woff2", "/dsfr/icons/system/fr--error-fill.svg"} {
		r, err := http.Get(srv + asset)
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", asset, err, r.Status)
		}
		r.Body.Close()
	}
	listing, err := http.Get(srv + "/dsfr/")
	if err != nil {
		t.Fatal(err)
	}
	listing.Body.Close()
	if listing.StatusCode != http.StatusNotFound {
		t.Fatalf("the assets' folder is listed: %s", listing.Status)
	}

	ctx := browser(t)
	h := hs[0]
	birth := h.birth[8:10] + "/" + h.birth[5:7] + "/" + h.birth[:4]
	for _, width := range []int64{390, 1280} {
		steps := []struct {
			name string
			act  chromedp.Tasks
		}{
			{"formulaire", chromedp.Tasks{chromedp.Navigate(srv + "/"), chromedp.WaitVisible("#code", chromedp.ByQuery)}},
			{"erreur", chromedp.Tasks{chromedp.Focus("#code", chromedp.ByQuery), chromedp.KeyEvent("ABCD"), chromedp.KeyEvent(kb.Enter),
				chromedp.WaitVisible("#erreur", chromedp.ByQuery)}},
			{"confirmation", chromedp.Tasks{chromedp.Navigate(srv + "/"), chromedp.Focus("#code", chromedp.ByQuery), chromedp.KeyEvent(h.code.String()),
				chromedp.Focus("#naissance", chromedp.ByQuery), chromedp.KeyEvent(birth), chromedp.KeyEvent(kb.Enter),
				chromedp.WaitVisible("#confirmer", chromedp.ByQuery)}},
			{"recu", chromedp.Tasks{chromedp.Click("#confirmer", chromedp.ByQuery), chromedp.WaitVisible("#reference", chromedp.ByQuery)}},
			{"annulation", chromedp.Tasks{chromedp.Click("form[action='/annuler'] button", chromedp.ByQuery),
				chromedp.WaitVisible(`//h2[contains(., "Opposition annulée")]`, chromedp.BySearch)}},
		}
		if err := chromedp.Run(ctx, emulation.SetDeviceMetricsOverride(width, 900, 1, width < 600)); err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if err := chromedp.Run(ctx, s.act, shot(t, fmt.Sprintf("dsfr-%d-%s", width, s.name))); err != nil {
				t.Fatalf("%d px, %s: %v", width, s.name, err)
			}
			v, err := axeViolations(ctx)
			if err != nil {
				t.Fatalf("%d px, %s: axe: %v", width, s.name, err)
			}
			if len(v) > 0 {
				t.Errorf("%d px, %s: axe-core finds %d violation(s):\n  %s", width, s.name, len(v), strings.Join(v, "\n  "))
			}
		}
	}
}
