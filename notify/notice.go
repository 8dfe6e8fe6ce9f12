package notify

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ens-sante/ens/provisioning"
)

// Kind of notice.
type Kind string

// The kinds of notice.
const (
	// KindOpposition announces the account and carries the opposition code.
	KindOpposition Kind = "opposition"
	// KindInformation tells a newborn's representative the account exists.
	KindInformation Kind = "information"
	// KindExtension announces a later deadline after a window extension.
	KindExtension Kind = "extension"
	// KindResend carries the opposition code again, at its holder's request,
	// with the deadline unchanged.
	KindResend Kind = "resend"
	// KindCopy is the curator's copy of the notice of an adult under
	// curatelle: the same code, the account's deadline.
	KindCopy Kind = "copy"
	// KindChange tells the holder of a change to their account (Topic).
	KindChange Kind = "change"
)

// ChangeText is what a notice of a change says happened, when, and how to
// undo it, by topic (provisioning.Change*), for the holder or their
// representative.
func ChangeText(topic string, at time.Time, forGuardian bool) string {
	whose := "votre profil"
	if forGuardian {
		whose = "le profil dont vous êtes le représentant légal"
	}
	on := "Le " + provisioning.FrenchDateTime(at) + ", "
	switch topic {
	case "opposition_withdrawn":
		return on + "l'opposition à la création de " + whose + " Mon espace santé a été annulée. Sans nouvelle opposition avant la date limite, le profil sera activé. " +
			"Pour vous opposer de nouveau, saisissez votre code d'opposition sur " + OfficialSite + " ou appelez le " + OfficialPhone + "."
	case "activated_by_holder":
		return on + whose + " Mon espace santé a été activé avant la fin du délai d'opposition. Vous pouvez le fermer à tout moment sur " + OfficialSite + " ou en appelant le " + OfficialPhone + "."
	case "opposed_by_agent":
		return on + "une opposition à la création de " + whose + " Mon espace santé a été enregistrée par un conseiller, après vérification de l'identité de la personne qui l'a demandée. " +
			"Pour l'annuler avant la date limite, saisissez votre code d'opposition sur " + OfficialSite + " ou appelez le " + OfficialPhone + "."
	case "reinstated":
		return on + whose + " Mon espace santé a été rétabli à la demande de son titulaire, après vérification de son identité. Vous pouvez le fermer à tout moment sur " +
			OfficialSite + " ou en appelant le " + OfficialPhone + "."
	case "came_of_age":
		return "Votre profil Mon espace santé a été créé quand vous étiez mineur(e), en en informant votre représentant légal. Vous avez maintenant 18 ans : ce profil est le vôtre. Vous pouvez le gérer, ou le fermer à tout moment, sur " + OfficialSite + "."
	}
	return on + whose + " Mon espace santé a été modifié."
}

func upperFirst(s string) string {
	r := []rune(s)
	if len(r) > 0 {
		r[0] = []rune(strings.ToUpper(string(r[0])))[0]
	}
	return string(r)
}

// Channel a notice travels by.
type Channel string

// The channels.
const (
	ChannelEmail  Channel = "email"
	ChannelLetter Channel = "letter"
)

// Official contact points printed on every notice. The web address is given
// as text to type, never as a link.
const (
	OfficialSite  = "www.monespacesante.fr"
	OfficialPhone = "34 22 (service gratuit + prix d'un appel)"
)

// Notice is everything a notice shows. Code is the formatted opposition code
// (empty for information notices); it lives in memory only while rendering.
type Notice struct {
	ID        int64
	AccountID int64
	Kind      Kind
	Topic     string    // a change notice's (provisioning.Change*)
	ChangedAt time.Time // when its change was made
	Channel   Channel
	// The account holder.
	FirstName, LastName string
	Female              bool
	// ForGuardian: the holder is a minor; the notice goes to the representative.
	ForGuardian bool
	Code        string
	Deadline    time.Time
	Email       string
	// Postal address: AFNOR lines 2 to 5, postcode, city, country.
	AddressLines [4]string
	Postcode     string
	City         string
	Country      string
	Department   string
}

// Reference is the notice's reference number, printed and quoted to the call
// centre; it identifies the notice, not the person.
func (n *Notice) Reference() string { return fmt.Sprintf("ENS-%09d", n.ID) }

// Salutation is "Madame" or "Monsieur", from the NIR's sex digit, or the
// representative's form for a minor.
func (n *Notice) Salutation() string {
	switch {
	case n.ForGuardian:
		return "Madame, Monsieur"
	case n.Female:
		return "Madame"
	}
	return "Monsieur"
}

// AddressBlock returns the AFNOR NF Z10-011 address: lines of at most 38
// characters, the recipient first, the last French line "POSTCODE CITY" in
// capitals, then the country in capitals when abroad.
func (n *Notice) AddressBlock() []string {
	lines := n.recipientLines()
	for _, l := range n.AddressLines {
		if l != "" {
			lines = append(lines, truncate(l, addressWidth))
		}
	}
	lines = append(lines, truncate(strings.ToUpper(n.Postcode+" "+n.City), addressWidth))
	if n.Country != "" {
		lines = append(lines, truncate(strings.ToUpper(n.Country), addressWidth))
	}
	return lines
}

// addressWidth is AFNOR NF Z10-011's line length.
const addressWidth = 38

// recipientLines name the recipient: the holder with their civility, or
// for a minor or a protected adult the representative or the curator. The
// name is never cut: when it does not fit in 38 characters the role's
// shorter form is tried, then the first names as initials (AFNOR: first
// names are abbreviated before the surname is touched); when it still does
// not fit, the surname goes on a line of its own, split between words
// if even that is too long.
func (n *Notice) recipientLines() []string {
	last := strings.ToUpper(n.LastName)
	var roles []string
	switch {
	case n.Kind == KindCopy && n.ForGuardian:
		roles = []string{"CURATEUR OU CURATRICE DE "}
	case n.ForGuardian:
		roles = []string{"REPRÉSENTANT LÉGAL DE ", "REPR. LÉGAL DE "} // a minor or an adult under tutelle
	case n.Female:
		roles = []string{"MME "}
	default:
		roles = []string{"M. "}
	}
	firsts := []string{n.FirstName, initials(n.FirstName)}
	for _, first := range firsts {
		for _, r := range roles {
			if l := r + strings.TrimSpace(first+" "+last); fits(l) {
				return []string{l}
			}
		}
	}
	// Two lines or more: the role and first names, then the surname.
	head := func() string {
		for _, first := range firsts {
			for _, r := range roles {
				if l := r + first; fits(l) {
					return l
				}
			}
		}
		return strings.TrimSpace(roles[len(roles)-1])
	}()
	return append([]string{head}, wrap(last, addressWidth)...)
}

func fits(l string) bool { return utf8.RuneCountInString(l) <= addressWidth }

// wrap splits s into lines of at most width characters, between words
// (after a space or a hyphen), cutting inside a word only when one word
// alone is longer than a line.
func wrap(s string, width int) []string {
	var lines []string
	for utf8.RuneCountInString(s) > width {
		r := []rune(s)
		cut := -1
		for i := width; i > 0; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
			if r[i-1] == '-' {
				cut = i
				break
			}
		}
		if cut <= 0 {
			cut = width
		}
		lines = append(lines, strings.TrimSpace(string(r[:cut])))
		s = strings.TrimSpace(string(r[cut:]))
	}
	return append(lines, s)
}

// initials shortens first names to their initials, keeping the hyphens of
// compound ones: "Marie-Christine Éléonore" → "M.-C. É.".
func initials(first string) string {
	var words []string
	for _, w := range strings.Fields(first) {
		var parts []string
		for _, p := range strings.Split(w, "-") {
			if r := []rune(p); len(r) > 0 {
				parts = append(parts, string(r[0])+".")
			}
		}
		words = append(words, strings.Join(parts, "-"))
	}
	return strings.Join(words, " ")
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
