package injector_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/internal/fixture"
)

// TestSwapUnderLoad: revisions swap while pods are injected concurrently; no admission fails, and
// every pod is wholly of one revision (its status names the revision its sidecar was rendered for).
func TestSwapUnderLoad(t *testing.T) {
	a, b := fixture.Policy(t, "swap-a"), fixture.Policy(t, "swap-b")
	inj := fixture.Injector(t, a, map[string]string{"istio-injection": "enabled"})
	raw := fixture.YAMLToJSON(t, plainPod)
	stop := make(chan struct{})
	var done, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := inj.Inject(t.Context(), fixture.Admission(raw, "default", ""))
				if err == nil && res.Pod == nil {
					err = errNoPatch
				}
				if err == nil {
					st, _, _ := inject.ReadStatus(res.Pod)
					if st.Revision != res.Revision || !strings.Contains(string(fixture.JSON(t, res.Pod)), `"value":"`+res.Revision+`"`) {
						err = errMixed
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
			}
		}()
	}
	swaps := 0
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); swaps++ {
		next := a
		if swaps%2 == 0 {
			next = b
		}
		if err := inj.Activate(next); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || done.Load() == 0 {
		t.Fatalf("%d admissions, %d failed across %d swaps (first: %v)", done.Load(), failed.Load(), swaps, firstErr.Load())
	}
	t.Logf("%d admissions across %d swaps, none failed", done.Load(), swaps)
}

type testError string

func (e testError) Error() string { return string(e) }

const (
	errNoPatch = testError("no patch")
	errMixed   = testError("pod mixes two revisions")
)
