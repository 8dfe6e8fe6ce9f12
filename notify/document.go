package notify

import (
	"bytes"
	"fmt"
	"time"

	"github.com/jung-kurt/gofpdf"

	"github.com/ens-sante/ens/provisioning"
)

// Section is a titled part of a document for a person: lines of text.
type Section struct {
	Title string
	Lines []string
}

// RenderDocument renders a document for a person — an answer to a right of
// access, say — as an A4 PDF in the letters' fonts: the title, the day it
// was made, then each section, over as many pages as it takes, each page
// numbered. The same content and day give the same bytes.
func RenderDocument(title string, at time.Time, sections []Section) ([]byte, error) {
	pdf := gofpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(at.UTC())
	pdf.SetModificationDate(at.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetTitle(title, true)
	pdf.SetAutoPageBreak(true, 20)
	addFonts(pdf)
	p := &page{pdf: pdf}
	pdf.SetFooterFunc(func() {
		pdf.SetY(-14)
		p.font(faceSans, 8)
		p.cell(0, 4, fmt.Sprintf("%s – page %d", title, pdf.PageNo()), "", 0, "C")
	})
	pdf.AddPage()
	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("loading the document's fonts: %w", err)
	}
	pdf.SetXY(20, 20)
	p.font(faceSansBold, 14)
	p.lines(170, 7, title)
	p.font(faceSans, 10)
	pdf.SetX(20)
	p.lines(170, 5, "Le "+provisioning.FrenchDateTime(at))
	for _, s := range sections {
		pdf.Ln(4)
		pdf.SetX(20)
		p.font(faceSansBold, 11)
		p.lines(170, 6, s.Title)
		p.font(faceSans, 9.5)
		for _, l := range s.Lines {
			pdf.SetX(24)
			p.lines(166, 4.6, l)
		}
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("rendering the document: %w", err)
	}
	return buf.Bytes(), nil
}
