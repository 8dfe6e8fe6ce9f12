package optout

import (
	"bytes"

	"github.com/jung-kurt/gofpdf"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/window"
)

// channelNames name on a receipt the channel an opposition came by, as
// recorded: the public JSON API is not the telephone.
var channelNames = map[string]string{ChannelWeb: "site internet", ChannelAPI: "service en ligne (API publique)",
	ChannelAgent: "courrier ou téléphone (agent)"}

// ReceiptPDF renders the proof of an opposition; the same receipt always
// gives the same bytes.
func ReceiptPDF(r *window.Receipt) ([]byte, error) {
	pdf := gofpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(r.At.UTC())
	pdf.SetModificationDate(r.At.UTC())
	pdf.SetCatalogSort(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 10, tr("Mon espace santé – Reçu d'opposition"), "", 1, "L", false, 0, "")
	pdf.Ln(6)
	pdf.SetFont("Helvetica", "", 12)
	lines := []string{
		"Numéro de reçu : " + r.Reference,
		"Enregistrée le " + provisioning.FrenchDateTime(r.At),
		"Profil concerné : " + r.FirstMasked,
		"Canal : " + channelNames[r.Channel],
	}
	if r.PostmarkedOn != nil {
		lines = append(lines, "Reçue par courrier, cachet de la poste du "+provisioning.FrenchDate(*r.PostmarkedOn)+" : c'est cette date qui compte.")
	}
	if r.Undone {
		lines = append(lines, "Cette opposition a ensuite été annulée à la demande de la personne.")
	} else {
		lines = append(lines, "Le profil Mon espace santé ne sera pas créé.")
		if r.Deadline.IsZero() {
			// Refused before any notice: there is no code to undo it with.
			lines = append(lines, "Pour annuler cette opposition, appelez le 34 22 : un conseiller vérifiera votre identité.")
		} else {
			lines = append(lines, "Vous pouvez annuler cette opposition "+provisioning.FrenchDeadline(r.Deadline)+" avec le même code.")
		}
	}
	for _, l := range lines {
		pdf.MultiCell(0, 7, tr(l), "", "L", false)
	}
	var buf bytes.Buffer
	err := pdf.Output(&buf)
	return buf.Bytes(), err
}
