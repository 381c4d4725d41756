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

func createToken(ctx context.Context, dataDir, name string, stdout io.Writer) error {
	st, err := store.Open(ctx, dataDir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.CreateToken(ctx, name)
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
