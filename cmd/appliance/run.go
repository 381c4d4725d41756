package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

func checkConfig(path string, stdout io.Writer) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (mode %s, %d relays)\n", path, c.Mode, len(c.Relays))
	return nil
}

// createToken prints a new API token. The flags are checked before the
// store is opened, so that a typo creates nothing.
func createToken(ctx context.Context, dataDir, name, scope, expires string, stdout io.Writer) error {
	sc, err := store.ParseScope(scope)
	if err != nil {
		return fmt.Errorf("--scope: %w", err)
	}
	life, err := store.ParseTokenLifetime(expires)
	if err != nil {
		return fmt.Errorf("--expires: %w", err)
	}
	st, err := store.Open(ctx, dataDir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.CreateScopedToken(ctx, store.NewToken{Name: name, Scope: sc, Lifetime: life})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func teardown(path string) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	return bridge.Teardown(c)
}
