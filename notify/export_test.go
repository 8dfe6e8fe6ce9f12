package notify

import "time"

// Drawn is one string a letter drew, and the font it was drawn in.
type Drawn struct {
	Font string
	Text string
}

// RenderLettersDrawing renders letters as RenderLetters does, and returns
// every string drawn with its font.
func RenderLettersDrawing(ns []*Notice, at time.Time, info LetterInfo) ([]Drawn, error) {
	var out []Drawn
	_, err := renderLetters(ns, at, info, func(f *face, s string) { out = append(out, Drawn{f.family + " " + f.style, s}) })
	return out, err
}

// LetterFonts maps each of the letters' fonts to whether it has a glyph
// for a character.
func LetterFonts() map[string]func(rune) bool {
	m := map[string]func(rune) bool{}
	for _, f := range faces {
		m[f.family+" "+f.style] = f.covers
	}
	return m
}
