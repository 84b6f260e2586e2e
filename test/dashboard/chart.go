package main

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The figure: panels stacked, each a title, its query, a plot with axes and a legend; notes under
// them. Everything is drawn from the panels alone with integer pixel positions and no map
// iteration, so the same panels give the same pixels, and png's encoder the same bytes.
const (
	figureWidth = 1100
	panelHeight = 420
	plotLeft    = 112 // room for the y tick labels and the y axis label
	plotRight   = 24
	plotTop     = 64 // under the title and the query
	plotBottom  = 96 // over the x tick labels, the x axis label and the legend
	noteHeight  = 17
)

var (
	background = color.RGBA{0xff, 0xff, 0xff, 0xff}
	ink        = color.RGBA{0x20, 0x22, 0x26, 0xff}
	muted      = color.RGBA{0x5f, 0x63, 0x68, 0xff}
	gridColor  = color.RGBA{0xe3, 0xe5, 0xe8, 0xff}
	axisColor  = color.RGBA{0x9a, 0x9e, 0xa4, 0xff}
	// palette holds the lines' colours in legend order: Grafana's classic palette, darkened where
	// it is too pale on white.
	palette = []color.RGBA{
		{0x1f, 0x78, 0xc1, 0xff}, // blue
		{0x3f, 0x9e, 0x3f, 0xff}, // green
		{0xe2, 0x4d, 0x42, 0xff}, // red
		{0xef, 0x84, 0x3c, 0xff}, // orange
		{0x8f, 0x3b, 0xb8, 0xff}, // purple
		{0x0a, 0x93, 0x96, 0xff}, // teal
		{0xb8, 0x93, 0x1c, 0xff}, // ochre
		{0x6d, 0x6d, 0x6d, 0xff}, // grey
	}
	face = basicfont.Face7x13
)

// render draws the panels one above the other, and the notes under them, wrapped to the width.
func render(panels []panel, notes []string) *image.RGBA {
	var wrapped []string
	for _, n := range notes {
		wrapped = append(wrapped, wrap(n, figureWidth-32)...)
	}
	notes = wrapped
	height := len(panels)*panelHeight + len(notes)*noteHeight + 16
	img := image.NewRGBA(image.Rect(0, 0, figureWidth, height))
	fill(img, img.Bounds(), background)
	for i, p := range panels {
		drawPanel(img, image.Rect(0, i*panelHeight, figureWidth, (i+1)*panelHeight), p)
	}
	for i, n := range notes {
		drawText(img, 16, len(panels)*panelHeight+i*noteHeight+13, n, muted)
	}
	return img
}

// wrap cuts s at spaces into lines at most width pixels wide (a longer word stands alone).
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case textWidth(line+" "+w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// writePNG encodes the figure.
func writePNG(w io.Writer, img image.Image) error {
	return (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(w, img)
}

func drawPanel(img *image.RGBA, r image.Rectangle, p panel) {
	drawTextScaled(img, r.Min.X+16, r.Min.Y+12, p.Title, ink, 2)
	drawText(img, r.Min.X+16, r.Min.Y+54, p.Query, muted)
	plot := image.Rect(r.Min.X+plotLeft, r.Min.Y+plotTop, r.Max.X-plotRight, r.Max.Y-plotBottom)

	xMin, xMax, yMax := 0.0, 0.0, 0.0
	for _, l := range p.Lines {
		for _, pt := range l.Points {
			xMax = max(xMax, pt.X)
			if !math.IsNaN(pt.Y) && !math.IsInf(pt.Y, 0) {
				yMax = max(yMax, pt.Y)
			}
		}
	}
	if xMax == xMin {
		xMax = xMin + 1
	}
	yStep := niceStep(yMax, 5)
	yMax = math.Ceil(yMax/yStep-1e-9) * yStep
	if yMax == 0 {
		yMax = yStep
	}
	px := func(x float64) float64 {
		return float64(plot.Min.X) + (x-xMin)/(xMax-xMin)*float64(plot.Dx())
	}
	py := func(y float64) float64 { return float64(plot.Max.Y) - y/yMax*float64(plot.Dy()) }

	// Horizontal grid and y ticks.
	scale, unit := unitScale(p.Unit, yMax)
	for i := 0; float64(i)*yStep <= yMax*(1+1e-9); i++ {
		v := float64(i) * yStep
		y := int(math.Round(py(v)))
		hline(img, plot.Min.X, plot.Max.X, y, gridColor)
		hline(img, plot.Min.X-5, plot.Min.X, y, axisColor)
		label := formatTick(v*scale) + " " + unit
		drawText(img, plot.Min.X-8-textWidth(label), y+4, label, muted)
	}
	// Vertical grid and x ticks, every 5 s (every second on a short run).
	xStep := 5.0
	if xMax-xMin < 10 {
		xStep = 1
	}
	for x := xMin; x <= xMax+1e-9; x += xStep {
		X := int(math.Round(px(x)))
		vline(img, X, plot.Min.Y, plot.Max.Y, gridColor)
		vline(img, X, plot.Max.Y, plot.Max.Y+5, axisColor)
		label := formatTick(x) + " s"
		drawText(img, X-textWidth(label)/2, plot.Max.Y+19, label, muted)
	}
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, axisColor)
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, axisColor)
	xLabel := "time after the first scrape"
	drawText(img, plot.Min.X+(plot.Dx()-textWidth(xLabel))/2, plot.Max.Y+37, xLabel, ink)
	yLabel := map[string]string{"reqps": "admissions per second", "s": "latency"}[p.Unit]
	drawTextUp(img, r.Min.X+14, plot.Min.Y+(plot.Dy()+textWidth(yLabel))/2, yLabel, ink)

	// The lines, then the legend in the same order and colours.
	for i, l := range p.Lines {
		var pts [][2]float64
		flush := func() {
			strokePolyline(img, plot, pts, palette[i%len(palette)])
			pts = pts[:0]
		}
		for _, pt := range l.Points {
			if math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) {
				flush()
				continue
			}
			pts = append(pts, [2]float64{px(pt.X), py(pt.Y)})
		}
		flush()
	}
	x, y := plot.Min.X, plot.Max.Y+62
	for i, l := range p.Lines {
		w := 28 + textWidth(l.Name) + 24
		if x+w > plot.Max.X && x > plot.Min.X {
			x, y = plot.Min.X, y+18
		}
		c := palette[i%len(palette)]
		fill(img, image.Rect(x, y-6, x+20, y-3), c)
		drawText(img, x+28, y, l.Name, ink)
		x += w
	}
}

// niceStep is a tick step of 1, 2, 2.5 or 5 times a power of ten giving about n ticks up to top.
func niceStep(top float64, n int) float64 {
	if top <= 0 {
		return 1
	}
	raw := top / float64(n)
	magnitude := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*magnitude >= raw*(1-1e-9) {
			return m * magnitude
		}
	}
	return 10 * magnitude
}

// unitScale is how tick values of the dashboard unit are shown: requests per second as they are,
// seconds in ms below 1 s (the face has no µ for Grafana's µs).
func unitScale(unit string, top float64) (float64, string) {
	switch {
	case unit != "s":
		return 1, "req/s"
	case top < 1:
		return 1e3, "ms"
	}
	return 1, "s"
}

// formatTick writes a tick value without float noise.
func formatTick(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1+1, y+1), c) }

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1+1), c) }

// blend paints c over the pixel at (x, y) with coverage a in [0, 1].
func blend(img *image.RGBA, x, y int, c color.RGBA, a float64) {
	if !(image.Point{x, y}).In(img.Bounds()) || a <= 0 {
		return
	}
	under := img.RGBAAt(x, y)
	mix := func(top, bottom uint8) uint8 {
		return uint8(math.Round(float64(top)*a + float64(bottom)*(1-a)))
	}
	img.SetRGBA(x, y, color.RGBA{mix(c.R, under.R), mix(c.G, under.G), mix(c.B, under.B), 0xff})
}

// strokePolyline draws a 2 px anti-aliased line through pts, clipped to clip: each pixel takes the
// line's colour by how far its centre is from the nearest segment, once for the whole line so that
// joints are not painted twice. A single point is drawn as a dot.
func strokePolyline(img *image.RGBA, clip image.Rectangle, pts [][2]float64, c color.RGBA) {
	if len(pts) == 0 {
		return
	}
	const half = 1.0 // half the line's width, in pixels
	box := image.Rectangle{}
	for i, p := range pts {
		r := image.Rect(int(math.Floor(p[0]-half-1)), int(math.Floor(p[1]-half-1)), int(math.Ceil(p[0]+half+2)), int(math.Ceil(p[1]+half+2)))
		if i == 0 {
			box = r
		} else {
			box = box.Union(r)
		}
	}
	box = box.Intersect(clip.Inset(-2)).Intersect(img.Bounds())
	coverage := make([]float64, box.Dx()*box.Dy())
	segments := make([][2][2]float64, 0, len(pts))
	if len(pts) == 1 {
		segments = append(segments, [2][2]float64{pts[0], pts[0]})
	}
	for i := 1; i < len(pts); i++ {
		segments = append(segments, [2][2]float64{pts[i-1], pts[i]})
	}
	for _, s := range segments {
		a, b := s[0], s[1]
		r := image.Rect(int(math.Floor(min(a[0], b[0])-half-1)), int(math.Floor(min(a[1], b[1])-half-1)),
			int(math.Ceil(max(a[0], b[0])+half+2)), int(math.Ceil(max(a[1], b[1])+half+2))).Intersect(box)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				d := distanceToSegment(float64(x)+0.5, float64(y)+0.5, a, b)
				cov := min(max(half+0.5-d, 0), 1)
				i := (y-box.Min.Y)*box.Dx() + (x - box.Min.X)
				coverage[i] = max(coverage[i], cov)
			}
		}
	}
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			blend(img, x, y, c, coverage[(y-box.Min.Y)*box.Dx()+(x-box.Min.X)])
		}
	}
}

// distanceToSegment is the distance from (x, y) to the segment a–b.
func distanceToSegment(x, y float64, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	t := 0.0
	if l := dx*dx + dy*dy; l > 0 {
		t = min(max(((x-a[0])*dx+(y-a[1])*dy)/l, 0), 1)
	}
	ex, ey := x-(a[0]+t*dx), y-(a[1]+t*dy)
	return math.Sqrt(ex*ex + ey*ey)
}

// textWidth is the width of s in pixels in the figure's face.
func textWidth(s string) int { return font.MeasureString(face, s).Ceil() }

// drawText writes s with its baseline at y.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// glyphs renders s into a mask, for text drawn scaled or turned.
func glyphs(s string) *image.Alpha {
	m := image.NewAlpha(image.Rect(0, 0, max(textWidth(s), 1), face.Height))
	d := font.Drawer{Dst: m, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(s)
	return m
}

// drawTextScaled writes s enlarged by a whole factor, its top at y.
func drawTextScaled(img *image.RGBA, x, y int, s string, c color.RGBA, factor int) {
	m := glyphs(s)
	b := m.Bounds()
	for gy := b.Min.Y; gy < b.Max.Y; gy++ {
		for gx := b.Min.X; gx < b.Max.X; gx++ {
			if a := m.AlphaAt(gx, gy).A; a > 0 {
				for dy := range factor {
					for dx := range factor {
						blend(img, x+gx*factor+dx, y+gy*factor+dy, c, float64(a)/255)
					}
				}
			}
		}
	}
}

// drawTextUp writes s turned a quarter left, reading upwards from (x, y), its top towards x.
func drawTextUp(img *image.RGBA, x, y int, s string, c color.RGBA) {
	if strings.TrimSpace(s) == "" {
		return
	}
	m := glyphs(s)
	b := m.Bounds()
	for gy := b.Min.Y; gy < b.Max.Y; gy++ {
		for gx := b.Min.X; gx < b.Max.X; gx++ {
			if a := m.AlphaAt(gx, gy).A; a > 0 {
				blend(img, x+gy, y-gx, c, float64(a)/255)
			}
		}
	}
}
