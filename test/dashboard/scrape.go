package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseExposition reads the Prometheus text format and adds the samples of the series named in keep
// to s at time t. Comments, other series and a sample's own timestamp are skipped.
func parseExposition(r io.Reader, keep map[string]bool, s *store, t int64) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, labels, value, err := parseSampleLine(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if keep[name] {
			s.add(name, labels, t, value)
		}
	}
	return sc.Err()
}

// parseSampleLine splits `name{label="value",...} value [timestamp]`.
func parseSampleLine(text string) (name string, labels map[string]string, value float64, err error) {
	end := strings.IndexAny(text, "{ \t")
	if end <= 0 {
		return "", nil, 0, fmt.Errorf("no value in %q", text)
	}
	name, rest := text[:end], text[end:]
	labels = map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " \t,")
			if rest == "" {
				return "", nil, 0, fmt.Errorf("unclosed labels in %q", text)
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return "", nil, 0, fmt.Errorf("bad label in %q", text)
			}
			key := strings.TrimSpace(rest[:eq])
			val, after, ok := unquoteLabel(rest[eq+2:])
			if !ok {
				return "", nil, 0, fmt.Errorf("bad label value in %q", text)
			}
			labels[key], rest = val, after
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("no value in %q", text)
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("value of %q: %w", text, err)
	}
	return name, labels, value, nil
}

// unquoteLabel reads a label value up to its closing quote, undoing the format's escapes (\\, \"
// and \n), and returns what follows the quote.
func unquoteLabel(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// scraper scrapes url every interval, as Prometheus does, into a store: a scrape's samples carry its
// scheduled time (Prometheus aligns scrape timestamps to the schedule too), in milliseconds after
// the first one. A failed scrape adds nothing.
type scraper struct {
	client   *http.Client
	url      string
	interval time.Duration
	keep     map[string]bool
	store    *store
	failed   int
}

// run scrapes at 0, interval, 2×interval, ... up to and including end after start.
func (sc *scraper) run(ctx context.Context, start time.Time, end time.Duration) {
	for k := time.Duration(0); k <= end; k += sc.interval {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(k))):
		}
		if err := sc.scrape(ctx, k.Milliseconds()); err != nil {
			sc.failed++
		}
	}
}

func (sc *scraper) scrape(ctx context.Context, t int64) error {
	ctx, cancel := context.WithTimeout(ctx, sc.interval*9/10)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sc.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := sc.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", sc.url, resp.StatusCode)
	}
	// Parse into a scratch store first, so that a scrape cut short adds nothing.
	got := newStore()
	if err := parseExposition(resp.Body, sc.keep, got, t); err != nil {
		return err
	}
	for _, s := range got.series {
		sc.store.add(s.Name, s.Labels, t, s.Samples[0].V)
	}
	return nil
}
