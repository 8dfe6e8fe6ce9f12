package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
func RenderLetters(ns []*Notice, renderedAt time.Time, info LetterInfo) (*LetterBatch, error) {
	return renderLetters(ns, renderedAt, info, nil)
}

func renderLetters(ns []*Notice, renderedAt time.Time, info LetterInfo, drawn func(*face, string)) (*LetterBatch, error) {
	if err := info.Check(); err != nil {
		return nil, err
	}
	pdf := gofpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(renderedAt.UTC())
	pdf.SetModificationDate(renderedAt.UTC())
	pdf.SetCatalogSort(true)
	// Pages uncompressed: gofpdf compresses each page with a zlib writer of
	// its own (about 1.2 MB allocated and cleared per page, not poolable
	// from outside), which took two thirds of a render's time and drove the
	// worker's heap; without it 5,000 pages render 2.8 times faster with a
	// twentieth of the allocation, and the file is 2.4 times larger (18 MB
	// for 5,000 pages; the fonts stay compressed).
	pdf.SetCompression(false)
	pdf.SetTitle("Mon espace santé – courriers", true)
	pdf.SetAutoPageBreak(false, 0)
	addFonts(pdf)
	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("loading the letter fonts: %w", err)
	}
	b := &LetterBatch{}
	for _, n := range ns {
		pdf.AddPage()
		if err := drawLetter(pdf, n, renderedAt, info, drawn); err != nil {
			return nil, err
		}
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

// LetterInfo is what every letter prints besides its notice: where to send
// a refusal by post, and the information on personal data that article 13
// of the GDPR requires (who processes the data and why, the person's rights,
// the data protection officer's contact).
type LetterInfo struct {
	// RefusalAddress is the postal address for refusals, on one line.
	RefusalAddress string
	// DataController names the controllers of the processing.
	DataController string
	// DPOContact is how to reach the data protection officer.
	DPOContact string
}

// DefaultDataController is the controllers of Mon espace santé's
// processing (article R1111-36 of the code de la santé publique).
const DefaultDataController = "le ministère chargé de la santé et la Caisse nationale de l'Assurance Maladie"

// Check reports what is missing for letters to be printed.
func (i LetterInfo) Check() error {
	var missing []string
	if strings.TrimSpace(i.RefusalAddress) == "" {
		missing = append(missing, "the postal address for refusals")
	}
	if strings.TrimSpace(i.DPOContact) == "" {
		missing = append(missing, "the data protection officer's contact")
	}
	if len(missing) > 0 {
		return fmt.Errorf("letters cannot be printed without %s", strings.Join(missing, " and "))
	}
	return nil
}

func (i LetterInfo) controller() string {
	if strings.TrimSpace(i.DataController) == "" {
		return DefaultDataController
	}
	return i.DataController
}

// dataProtection is the paragraph on personal data printed at the foot of
// every letter.
// A representative or a curator reads of the data of the person they act
// for.
func (i LetterInfo) dataProtection(n *Notice) string {
	whose, profile := "votre identité, votre date de naissance et vos coordonnées", "votre profil"
	if n.ForGuardian {
		whose, profile = "l'identité, la date de naissance et les coordonnées de la personne concernée", "son profil"
	}
	return "Données personnelles. " + upperFirst(i.controller()) + " traitent " + whose +
		" pour créer " + profile + " Mon espace santé, en informer et recueillir une éventuelle opposition " +
		"(mission d'intérêt public, articles L1111-13-1 et R1111-26 et suivants du code de la santé publique). " +
		"Ces données sont conservées tant que le profil existe, puis dix ans après sa clôture. Vous pouvez y accéder, les faire " +
		"rectifier ou en limiter l'usage auprès du délégué à la protection des données : " + i.DPOContact +
		". Vous pouvez aussi adresser une réclamation à la CNIL (www.cnil.fr)."
}

// Layout of the page, in millimetres.
const (
	footerY = 284.0 // the reference line
	footGap = 3.0   // between the data-protection paragraph and the footer
)

func drawLetter(pdf *gofpdf.Fpdf, n *Notice, renderedAt time.Time, info LetterInfo, drawn func(*face, string)) error {
	p := &page{pdf: pdf, drawn: drawn}
	// Sender, top left.
	p.font(faceSansBold, 11)
	pdf.SetXY(20, 15)
	p.cell(90, 5, "Mon espace santé", "", 2, "L")
	p.font(faceSans, 9)
	p.cell(90, 4, "L'Assurance Maladie", "", 2, "L")
	p.cell(90, 4, "Référence : "+n.Reference(), "", 2, "L")

	// Address block in the window of a DL envelope: 100 mm from the left,
	// 45 mm from the top, 38 characters a line.
	p.font(faceMono, 10)
	y := 47.0
	for _, l := range n.AddressBlock() {
		pdf.SetXY(100, y)
		p.cell(95, 4.5, l, "", 0, "L")
		y += 4.5
	}

	p.font(faceSans, 10)
	pdf.SetXY(120, max(y+2, 85))
	p.cell(75, 5, "Le "+provisioning.FrenchDate(renderedAt), "", 0, "R")

	pdf.SetXY(20, max(y+15, 98))
	p.font(faceSansBold, 12)
	title := "Votre profil Mon espace santé va être créé"
	switch {
	case n.Kind == KindChange:
		title = "Un changement sur le profil Mon espace santé de " + n.FirstName + " " + n.LastName
	case n.Kind == KindInformation:
		title = "Le profil Mon espace santé de " + n.FirstName + " a été créé"
	case n.Kind == KindExtension:
		title = "Le délai d'opposition à Mon espace santé est prolongé"
	case n.Kind == KindResend:
		title = "Votre code d'opposition à Mon espace santé, envoyé de nouveau"
	case n.Kind == KindCopy:
		title = "Copie : le profil Mon espace santé de " + n.FirstName + " va être créé"
	case n.ForGuardian:
		title = "Le profil Mon espace santé de " + n.FirstName + " va être créé"
	}
	p.lines(170, 6, title)
	pdf.Ln(4)
	p.font(faceSans, 10.5)
	para := func(s string) {
		pdf.SetX(20)
		p.lines(170, 5.2, s)
		pdf.Ln(2.5)
	}
	para(n.Salutation() + ",")
	deadline := provisioning.FrenchDeadline(n.Deadline)
	switch n.Kind {
	case KindChange:
		para(ChangeText(n.Topic, n.ChangedAt, n.ForGuardian))
		who := ""
		if n.ForGuardian {
			who = " ni la personne concernée"
		}
		para("Si vous n'êtes pas à l'origine de ce changement" + who + ", appelez le " + OfficialPhone + " : un conseiller vérifiera avec vous ce qui a été fait.")
	case KindInformation:
		para("Le profil Mon espace santé de " + n.FirstName + " " + n.LastName + " a été créé. Mon espace santé est le service public qui permet de stocker et partager ses documents et données de santé en toute confidentialité.")
		para("En tant que représentant légal, vous pourrez l'activer et le gérer sur " + OfficialSite + ".")
	default:
		switch {
		case n.Kind == KindExtension && n.ForGuardian:
			para("Le délai pour vous opposer à la création du profil Mon espace santé de " + n.FirstName + " " + n.LastName + " a été prolongé.")
		case n.Kind == KindExtension:
			para("Le délai pour vous opposer à la création de votre profil Mon espace santé a été prolongé.")
		case n.Kind == KindResend:
			para("Vous avez demandé à recevoir de nouveau votre code d'opposition. Le voici ; la date limite reste la même.")
		}
		switch {
		case n.Kind == KindExtension:
		case n.Kind == KindCopy:
			para("Vous recevez cette copie en tant que curateur ou curatrice de " + n.FirstName + " " + n.LastName +
				", qui a reçu le même courrier : son profil Mon espace santé va être créé, et l'opposition peut être faite par la personne ou avec votre assistance.")
		case n.ForGuardian:
			para("En tant que représentant légal de " + n.FirstName + " " + n.LastName + ", vous êtes informé(e) que son profil Mon espace santé va être créé.")
		default:
			para("Votre profil Mon espace santé va être créé. Mon espace santé est le service public qui permet de stocker et partager ses documents et données de santé en toute confidentialité.")
		}
		para("Si vous ne le souhaitez pas, vous pouvez vous y opposer " + deadline + " : la date imprimée sur ce courrier est celle qui fait foi.")
		pdf.SetX(20)
		label := "Votre code d'opposition :"
		if n.Kind == KindExtension {
			label = "Votre code d'opposition, inchangé :"
		}
		p.cell(170, 6, label, "", 1, "L")
		pdf.SetX(20)
		p.font(faceMono, 22)
		p.cell(170, 12, n.Code, "1", 1, "C")
		pdf.Ln(3)
		p.font(faceSans, 10.5)
		birth := "votre date de naissance"
		switch {
		case n.Kind == KindCopy:
			birth = "la date de naissance de la personne concernée"
		case n.ForGuardian: // a minor or an adult under tutelle: named, not "l'enfant"
			birth = "la date de naissance de " + n.FirstName + " " + n.LastName
		}
		para("Pour vous opposer, munissez-vous de ce code et de " + birth + " :")
		para("- sur internet : saisissez vous-même l'adresse " + OfficialSite + " dans votre navigateur ;")
		para("- par téléphone : " + OfficialPhone + " ;")
		para("- par courrier posté au plus tard le " + provisioning.FrenchDate(n.Deadline) + " (le cachet de la poste faisant foi), en joignant ce code : " + info.RefusalAddress + ".")
		para("Sans démarche de votre part, le profil sera activé après cette date. Vous pourrez le fermer à tout moment.")
	}
	para("Nous ne vous demanderons jamais vos identifiants ni vos coordonnées bancaires.")
	bodyEnd := pdf.GetY()

	// The data-protection paragraph, set from the foot of the page up.
	p.font(faceSans, 7.5)
	const lineH = 3.4
	text := info.dataProtection(n)
	top := footerY - footGap - float64(len(pdf.SplitText(faceSans.printable(text), 170)))*lineH
	if bodyEnd > top {
		return fmt.Errorf("notice %d: the letter's text runs into its foot (%.0f mm > %.0f mm)", n.ID, bodyEnd, top)
	}
	pdf.SetXY(20, top)
	p.lines(170, lineH, text)
	pdf.SetXY(20, footerY)
	p.font(faceSans, 8)
	p.cell(170, 4, "Référence "+n.Reference(), "", 0, "C")
	return nil
}

// StagedBatch is a batch's PDF and manifest written under staging names,
// to be published (renamed to their final names) only once the batch's
// transaction has committed, or discarded if it did not: no file full of
// codes is ever left that no table knows.
type StagedBatch struct {
	// PDF and Manifest are the final paths, which the batch records.
	PDF, Manifest string
}

// StagingPrefix starts the name of a file not yet published.
const StagingPrefix = ".staging-"

func staged(path string) string {
	return filepath.Join(filepath.Dir(path), StagingPrefix+filepath.Base(path))
}

// StageBatch writes a batch's PDF and manifest CSV into dir under staging
// names, durably and readable by their owner only: they carry codes.
func StageBatch(dir, base string, b *LetterBatch) (*StagedBatch, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating letters directory: %w", err)
	}
	s := &StagedBatch{PDF: filepath.Join(dir, base+".pdf"), Manifest: filepath.Join(dir, base+".manifest.csv")}
	if err := writeAtomic(staged(s.PDF), func(w io.Writer) error { _, err := w.Write(b.PDF); return err }); err != nil {
		return nil, err
	}
	err := writeAtomic(staged(s.Manifest), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"notice_id", "postcode", "page"}) //nolint:errcheck
		for _, r := range b.Manifest {
			cw.Write([]string{strconv.FormatInt(r.NoticeID, 10), r.Postcode, strconv.Itoa(r.Page)}) //nolint:errcheck
		}
		cw.Write([]string{"#sha256", b.SHA256, filepath.Base(s.PDF)}) //nolint:errcheck
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		s.Discard()
		return nil, err
	}
	return s, nil
}

// Publish gives the staged files their final names.
func (s *StagedBatch) Publish() error { return PublishStaged(s.PDF, s.Manifest) }

// Discard removes the staged files.
func (s *StagedBatch) Discard() {
	os.Remove(staged(s.PDF))      //nolint:errcheck
	os.Remove(staged(s.Manifest)) //nolint:errcheck
}

// PublishStaged renames the staged files of the given final paths to those
// paths (a file already published is left alone), then syncs the directory.
func PublishStaged(paths ...string) error {
	for _, p := range paths {
		if err := os.Rename(staged(p), p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("publishing %s: %w", filepath.Base(p), err)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	d, err := os.Open(filepath.Dir(paths[0]))
	if err != nil {
		return fmt.Errorf("syncing the letters directory: %w", err)
	}
	defer d.Close()
	return d.Sync()
}

// StagedFiles lists the files of dir (and its subfolders) still under a
// staging name, with the final path each would be published as.
func StagedFiles(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() && strings.HasPrefix(e.Name(), StagingPrefix) {
			out[p] = filepath.Join(filepath.Dir(p), strings.TrimPrefix(e.Name(), StagingPrefix))
		}
		return nil
	})
	return out, err
}

func writeAtomic(path string, fill func(io.Writer) error) error {
	// Named after the file it becomes: a writer killed half-way leaves a
	// temporary file the staged files' recovery recognises.
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
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
