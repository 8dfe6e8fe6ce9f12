package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jung-kurt/gofpdf"

	"github.com/ens-sante/ens/provisioning"
)

// ManifestRow locates one notice in a letter batch, for the postal operator.
type ManifestRow struct {
	NoticeID int64
	Postcode string
	Page     int
}

// LetterBatch is a rendered PDF of letters.
type LetterBatch struct {
	PDF      []byte
	Manifest []ManifestRow
	SHA256   string
}

// SortForPost orders letters by postcode (then notice id), as the postal
// operator wants them.
func SortForPost(ns []*Notice) {
	sort.SliceStable(ns, func(i, j int) bool {
		if ns[i].Postcode != ns[j].Postcode {
			return ns[i].Postcode < ns[j].Postcode
		}
		return ns[i].ID < ns[j].ID
	})
}

// RenderLetters renders one A4 page per notice, in the given order. The same
// notices and renderedAt always give the same bytes.
func RenderLetters(ns []*Notice, renderedAt time.Time) (*LetterBatch, error) {
	pdf := gofpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(renderedAt.UTC())
	pdf.SetModificationDate(renderedAt.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetCompression(true)
	pdf.SetTitle("Mon espace santé – courriers", true)
	pdf.SetAutoPageBreak(false, 0)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: é, ë, ñ, œ print correctly
	b := &LetterBatch{}
	for _, n := range ns {
		pdf.AddPage()
		drawLetter(pdf, tr, n, renderedAt)
		b.Manifest = append(b.Manifest, ManifestRow{NoticeID: n.ID, Postcode: n.Postcode, Page: pdf.PageNo()})
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("rendering letters: %w", err)
	}
	b.PDF = buf.Bytes()
	sum := sha256.Sum256(b.PDF)
	b.SHA256 = hex.EncodeToString(sum[:])
	return b, nil
}

func drawLetter(pdf *gofpdf.Fpdf, tr func(string) string, n *Notice, renderedAt time.Time) {
	// Sender, top left.
	pdf.SetFont("Helvetica", "B", 11)
	pdf.SetXY(20, 15)
	pdf.CellFormat(90, 5, tr("Mon espace santé"), "", 2, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	pdf.CellFormat(90, 4, tr("L'Assurance Maladie"), "", 2, "L", false, 0, "")
	pdf.CellFormat(90, 4, tr("Référence : "+n.Reference()), "", 2, "L", false, 0, "")

	// Address block in the window of a DL envelope: 100 mm from the left,
	// 45 mm from the top, 38 characters a line.
	pdf.SetFont("Courier", "", 10)
	y := 47.0
	for _, l := range n.AddressBlock() {
		pdf.SetXY(100, y)
		pdf.CellFormat(95, 4.5, tr(l), "", 0, "L", false, 0, "")
		y += 4.5
	}

	pdf.SetFont("Helvetica", "", 10)
	pdf.SetXY(120, 85)
	pdf.CellFormat(75, 5, tr("Le "+provisioning.FrenchDate(renderedAt)), "", 0, "R", false, 0, "")

	pdf.SetXY(20, 98)
	pdf.SetFont("Helvetica", "B", 12)
	title := "Votre profil Mon espace santé va être créé"
	switch {
	case n.Kind == KindInformation:
		title = "Le profil Mon espace santé de " + n.FirstName + " a été créé"
	case n.Kind == KindExtension:
		title = "Le délai d'opposition à Mon espace santé est prolongé"
	case n.ForGuardian:
		title = "Le profil Mon espace santé de " + n.FirstName + " va être créé"
	}
	pdf.MultiCell(170, 6, tr(title), "", "L", false)
	pdf.Ln(4)
	pdf.SetFont("Helvetica", "", 10.5)
	para := func(s string) {
		pdf.SetX(20)
		pdf.MultiCell(170, 5.2, tr(s), "", "L", false)
		pdf.Ln(2.5)
	}
	para(n.Salutation() + ",")
	deadline := provisioning.FrenchDeadline(n.Deadline)
	who := "votre"
	if n.ForGuardian {
		who = "le"
	}
	switch n.Kind {
	case KindInformation:
		para("Le profil Mon espace santé de " + n.FirstName + " " + n.LastName + " a été créé. Mon espace santé est le service public qui permet de stocker et partager ses documents et données de santé en toute confidentialité.")
		para("En tant que représentant légal, vous pourrez l'activer et le gérer sur " + OfficialSite + ".")
	case KindExtension:
		para("Le délai pour vous opposer à la création de " + who + " profil Mon espace santé a été prolongé. Vous pouvez désormais vous y opposer " + deadline + ", avec le code d'opposition qui vous a été communiqué.")
	default:
		if n.ForGuardian {
			para("En tant que représentant légal de " + n.FirstName + " " + n.LastName + ", vous êtes informé(e) que son profil Mon espace santé va être créé.")
		} else {
			para("Votre profil Mon espace santé va être créé. Mon espace santé est le service public qui permet de stocker et partager ses documents et données de santé en toute confidentialité.")
		}
		para("Si vous ne le souhaitez pas, vous pouvez vous y opposer " + deadline + " : la date imprimée sur ce courrier est celle qui fait foi.")
		pdf.SetX(20)
		pdf.SetFont("Helvetica", "", 10.5)
		pdf.CellFormat(170, 6, tr("Votre code d'opposition :"), "", 1, "L", false, 0, "")
		pdf.SetX(20)
		pdf.SetFont("Courier", "B", 22)
		pdf.CellFormat(170, 12, n.Code, "1", 1, "C", false, 0, "")
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "", 10.5)
		birth := "votre date de naissance"
		if n.ForGuardian {
			birth = "la date de naissance de l'enfant"
		}
		para("Pour vous opposer, munissez-vous de ce code et de " + birth + " :")
		para("- sur internet : saisissez vous-même l'adresse " + OfficialSite + " dans votre navigateur ;")
		para("- par téléphone : " + OfficialPhone + " ;")
		para("- par courrier, en joignant ce code : " + OfficialPost + ".")
		para("Sans démarche de votre part, le profil sera activé après cette date. Vous pourrez le fermer à tout moment.")
	}
	para("Nous ne vous demanderons jamais vos identifiants ni vos coordonnées bancaires.")
	pdf.SetXY(20, 280)
	pdf.SetFont("Helvetica", "", 8)
	pdf.CellFormat(170, 4, tr("Référence "+n.Reference()), "", 0, "C", false, 0, "")
}

// WriteBatch writes a batch's PDF and manifest CSV into dir, atomically
// (temp file + rename) and readable by their owner only: they carry codes.
func WriteBatch(dir, base string, b *LetterBatch) (pdfPath, manifestPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("creating letters directory: %w", err)
	}
	pdfPath = filepath.Join(dir, base+".pdf")
	manifestPath = filepath.Join(dir, base+".manifest.csv")
	if err := writeAtomic(pdfPath, func(w io.Writer) error { _, err := w.Write(b.PDF); return err }); err != nil {
		return "", "", err
	}
	err = writeAtomic(manifestPath, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"notice_id", "postcode", "page"}) //nolint:errcheck
		for _, r := range b.Manifest {
			cw.Write([]string{strconv.FormatInt(r.NoticeID, 10), r.Postcode, strconv.Itoa(r.Page)}) //nolint:errcheck
		}
		cw.Write([]string{"#sha256", b.SHA256, filepath.Base(pdfPath)}) //nolint:errcheck
		cw.Flush()
		return cw.Error()
	})
	return pdfPath, manifestPath, err
}

func writeAtomic(path string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
