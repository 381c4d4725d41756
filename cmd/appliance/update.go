package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/relaygate/relaygate/update"
)

// updateCommand runs `appliance update ...`: installing a bundle from the
// console (the only place a downgrade can be forced) and the signing-key
// tools image/build.sh and administrators use. newUpdater gives the
// updater for the machine's layout (update.New; tests pass stand-ins).
func updateCommand(ctx context.Context, args []string, stdout, stderr io.Writer, newUpdater func(*slog.Logger) *update.Updater) error {
	if len(args) == 0 {
		return errUsage
	}
	fs := flag.NewFlagSet("update "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "apply":
		sum := fs.String("sha256", "", "the bundle's published SHA-256 (optional extra check)")
		force := fs.Bool("force-downgrade", false, "install even when the bundle is not newer than the running image")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
			return errUsage
		}
		return applyBundle(ctx, fs.Arg(0), update.Options{SHA256: *sum, ForceDowngrade: *force}, stdout, stderr, newUpdater)
	case "keygen":
		secret := fs.String("secret", "", "secret key file to create (keep it off the appliance)")
		public := fs.String("public", "", "public key file to create (the image's update.pub)")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *secret == "" || *public == "" {
			return errUsage
		}
		return keyGen(*secret, *public, stdout)
	case "pubkey":
		key := fs.String("key", "", "secret key file")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *key == "" {
			return errUsage
		}
		k, err := readSecretKey(*key)
		if err != nil {
			return err
		}
		_, err = stdout.Write(k.Public().Marshal("relaygate update public key " + k.Num.String()))
		return err
	case "sign":
		key := fs.String("key", "", "secret key file")
		out := fs.String("out", "", "signature file to write (default: MANIFEST.sig)")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 || *key == "" {
			return errUsage
		}
		return signManifest(*key, fs.Arg(0), *out)
	}
	return errUsage
}

func applyBundle(ctx context.Context, path string, opts update.Options, stdout, stderr io.Writer, newUpdater func(*slog.Logger) *update.Updater) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("update apply: %w", err)
	}
	defer f.Close()
	if s := strings.Fields(opts.SHA256); len(s) > 0 {
		opts.SHA256 = s[0] // "HEX  FILE" as in the .sha256 file
	}
	u := newUpdater(slog.New(slog.NewTextHandler(stderr, nil)))
	res, err := u.Install(ctx, f, opts)
	if err != nil {
		if errors.Is(err, update.ErrNotNewer) {
			return fmt.Errorf("update apply: %w (to install it anyway: --force-downgrade)", err)
		}
		return fmt.Errorf("update apply: %w", err)
	}
	fmt.Fprintf(stdout, "installed %s on slot %s (entry %s); the running slot %s stays the default.\n"+
		"Reboot (systemctl reboot) to try it once; it is kept when the health check passes.\n",
		res.Version, res.Slot, res.Entry, res.Previous)
	return nil
}

func keyGen(secretPath, publicPath string, stdout io.Writer) error {
	k, err := update.KeyGen(nil)
	if err != nil {
		return err
	}
	comment := "relaygate update key " + k.Num.String()
	// O_EXCL: never overwrite a key that bundles in the field depend on.
	if err := writeNew(secretPath, k.MarshalSecret(comment+" secret"), 0o600); err != nil {
		return err
	}
	if err := writeNew(publicPath, k.Public().Marshal(comment+" public"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: secret %s, public %s\n", k.Num, secretPath, publicPath)
	return nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readSecretKey(path string) (*update.SecretKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	k, err := update.ParseSecretKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func signManifest(keyPath, manifestPath, out string) error {
	k, err := readSecretKey(keyPath)
	if err != nil {
		return err
	}
	msg, err := os.ReadFile(manifestPath)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if _, err := update.ParseManifest(strings.NewReader(string(msg))); err != nil {
		return fmt.Errorf("%s: %w", manifestPath, err)
	}
	if out == "" {
		out = manifestPath + ".sig"
	}
	sig := k.Sign(msg, "verify with relaygate update public key "+k.Num.String())
	if err := os.WriteFile(out, sig, 0o644); err != nil {
		return fmt.Errorf("write signature: %w", err)
	}
	return nil
}
