package wasm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Validation of a module as written, before any rewrite. The rewrite adds a global, three
// function imports and two types; in the module as written those indices do not exist, so
// a module that names them (to overwrite the fuel counter, say) is invalid and must never
// reach the rewriter, which assumes valid input. wazero's own validator decides: the
// module is compiled by wazero's interpreter engine, whose compile is a validation pass plus
// a cheap lowering (see RATIONALE.md, "Validating modules as written", for its cost), with
// the same core features as the runtime that will run it.

var (
	validatorOnce sync.Once
	validator     wazero.Runtime
)

// validated remembers the modules this process has validated (by content hash and limits),
// so that loading the same bytes again (a reload from the compilation cache, a plugin used by
// several pipelines) does not pay the validation twice. A few hundred bytes an entry.
var validated sync.Map // validKey -> *Shape

type validKey struct {
	sum    [32]byte
	limits Limits
	host   string
}

func validatorRuntime() wazero.Runtime {
	validatorOnce.Do(func() {
		validator = wazero.NewRuntimeWithConfig(context.Background(),
			wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
	})
	return validator
}

// Validate checks b, as written, against the structural limits l and then with wazero's
// validator, and rejects imports of module hostModule named in Reserved. It returns the
// module's shape. A module Validate accepts can be given to Instrument.
func Validate(ctx context.Context, b []byte, l Limits, hostModule string) (_ *Shape, err error) {
	key := validKey{sum: sha256.Sum256(b), limits: l.withDefaults(), host: hostModule}
	if sh, ok := validated.Load(key); ok {
		return sh.(*Shape), nil
	}
	sh, err := CheckLimits(b, l)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			validated.Store(key, sh)
		}
	}()
	c, err := validatorRuntime().CompileModule(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("invalid module: %w", err)
	}
	defer c.Close(ctx)
	for _, imp := range c.ImportedFunctions() {
		mod, name, _ := imp.Import()
		if mod != hostModule {
			continue
		}
		for _, r := range Reserved {
			if name == r {
				return nil, fmt.Errorf("imports %s.%s, which only the host may add", mod, name)
			}
		}
	}
	return sh, nil
}
