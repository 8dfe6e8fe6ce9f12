package notify

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/ens-sante/ens/provisioning"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var (
	textTmpl = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/email.txt.tmpl"))
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/email.html.tmpl"))
)

// Email is a rendered email notice.
type Email struct {
	Kind    Kind
	Subject string
	Text    string
	HTML    string
}

// emailData is what the templates see. Its fields are its own, not those of
// an embedded Notice: templates look fields up by reflection on every
// execution, and promoted fields take reflect's slow path.
type emailData struct {
	Information, Extension, Resend, Copy, Change              bool // the notice's kind; otherwise an opposition notice
	ChangeText                                                string
	FirstName, LastName, Code                                 string
	ForGuardian                                               bool
	Subject, Salutation, DeadlineText, Site, Phone, Reference string
}

// RenderEmail renders a notice as a French email; a pure function.
func RenderEmail(n *Notice) (*Email, error) {
	d := emailData{Information: n.Kind == KindInformation, Extension: n.Kind == KindExtension, Resend: n.Kind == KindResend, Copy: n.Kind == KindCopy,
		Change: n.Kind == KindChange, FirstName: n.FirstName, LastName: n.LastName, Code: n.Code, ForGuardian: n.ForGuardian,
		Salutation: n.Salutation(), DeadlineText: provisioning.FrenchDeadline(n.Deadline),
		Site: OfficialSite, Phone: OfficialPhone, Reference: n.Reference()}
	switch n.Kind {
	case KindChange:
		d.ChangeText = ChangeText(n.Topic, n.ChangedAt, n.ForGuardian)
		d.Subject = "Mon espace santé : un changement sur le profil de " + n.FirstName + " " + n.LastName
	case KindInformation:
		d.Subject = "Mon espace santé : le profil de " + n.FirstName + " a été créé"
	case KindExtension:
		d.Subject = "Mon espace santé : le délai d'opposition est prolongé " + d.DeadlineText
	case KindResend:
		d.Subject = "Mon espace santé : votre code d'opposition, envoyé de nouveau à votre demande"
	case KindCopy:
		d.Subject = "Mon espace santé : copie de l'avis adressé à " + n.FirstName + " " + n.LastName + " (curatelle)"
	default:
		d.Subject = "Mon espace santé : votre profil va être créé – vous pouvez vous y opposer " + d.DeadlineText
	}
	var text, html bytes.Buffer
	text.Grow(2048)
	html.Grow(3072)
	if err := textTmpl.Execute(&text, d); err != nil {
		return nil, err
	}
	if err := htmlTmpl.Execute(&html, d); err != nil {
		return nil, err
	}
	return &Email{Kind: n.Kind, Subject: d.Subject, Text: squeezeBlankLines(text.String()), HTML: html.String()}, nil
}

func squeezeBlankLines(s string) string {
	for strings.Contains(s, "\n\n\n") {
		s = strings.ReplaceAll(s, "\n\n\n", "\n\n")
	}
	return strings.TrimLeft(s, "\n")
}
