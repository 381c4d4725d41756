// Command appliance is relaygate: the egress SMTP guard daemon and its
// administrative subcommands.
//
//	appliance run --config FILE            the daemon
//	appliance check-config --config FILE   validate a configuration file
//	appliance token create --data-dir DIR  print a new API bearer token (--scope, --expires)
//	appliance teardown --config FILE       remove relaygate's rules and routes
//	appliance info --config FILE           KEY='VALUE' lines for the image's scripts
//	appliance health --config FILE         exit 0 when the daemon serves
//	appliance init-config --ports M,I,O    write the first configuration
//	appliance config pull|push --url URL --token TOKEN   configuration as code
//	appliance update apply FILE            install a signed update bundle (console)
//	appliance update keygen|pubkey|sign    update signing keys and signatures
//	appliance version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/relaygate/relaygate/boot"
	"github.com/relaygate/relaygate/daemon"
	"github.com/relaygate/relaygate/update"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  appliance run --config FILE [--log-format text|json] [--cpuprofile FILE]
  appliance check-config --config FILE
  appliance token create --data-dir DIR [--scope metrics|read|admin] [--expires 90d] [--name NAME]
  appliance teardown --config FILE
  appliance info --config FILE
  appliance health --config FILE [--timeout DURATION]
  appliance init-config --ports MANAGEMENT,INSIDE,OUTSIDE [--config FILE] [--data-dir DIR] [--force]
  appliance config pull --url URL --token TOKEN [--out FILE] [--fingerprint sha256:.. | --ca-file FILE | --insecure]
  appliance config push --url URL --token TOKEN [--if-match ETAG] [TLS options as pull] FILE
  appliance update apply [--sha256 HEX] [--force-downgrade] BUNDLE
  appliance update keygen --secret FILE --public FILE
  appliance update pubkey --key SECRET
  appliance update sign --key SECRET [--out FILE] MANIFEST
  appliance version
`

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "appliance: %v\n", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file")
		logFormat := fs.String("log-format", "", "log format: text or json (default: log.format of the config)")
		cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (diagnostics)")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		return daemon.Run(ctx, daemon.Options{ConfigPath: *cfgPath, LogFormat: *logFormat, Stderr: stderr, Version: version})
	case "check-config":
		fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		return checkConfig(*cfgPath, stdout)
	case "token":
		if len(args) < 2 || args[1] != "create" {
			return errUsage
		}
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dataDir := fs.String("data-dir", "/var/lib/relaygate", "data directory of the appliance")
		name := fs.String("name", "cli", "a label for the token")
		scope := fs.String("scope", "admin", "what the token may do: metrics (GET /metrics), read (GET only) or admin")
		expires := fs.String("expires", "never", "lifetime: hours, days or weeks, e.g. 12h, 90d, 2w; never")
		if err := fs.Parse(args[2:]); err != nil {
			return errUsage
		}
		return createToken(ctx, *dataDir, *name, *scope, *expires, stdout)
	case "teardown":
		fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		return teardown(*cfgPath)
	case "info":
		fs := flag.NewFlagSet("info", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
			return errUsage
		}
		return boot.WriteInfo(stdout, *cfgPath, version)
	case "health":
		fs := flag.NewFlagSet("health", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file")
		timeout := fs.Duration("timeout", 0, "keep trying every 2s for this long (0: once)")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
			return errUsage
		}
		ok, err := boot.Health(ctx, *cfgPath, *timeout)
		if err != nil {
			return fmt.Errorf("health: %w", err)
		}
		fmt.Fprintln(stdout, ok)
		return nil
	case "init-config":
		fs := flag.NewFlagSet("init-config", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/relaygate/relaygate.yaml", "configuration file to create")
		ports := fs.String("ports", "", "management,inside,outside interface names")
		dataDir := fs.String("data-dir", "/var/lib/relaygate", "data_dir of the new configuration")
		force := fs.Bool("force", false, "replace an existing configuration (kept as FILE.prev)")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *ports == "" {
			return errUsage
		}
		return boot.InitConfig(*cfgPath, *ports, *dataDir, *force, stdout)
	case "config":
		if len(args) < 2 || (args[1] != "pull" && args[1] != "push") {
			return errUsage
		}
		fs := flag.NewFlagSet("config "+args[1], flag.ContinueOnError)
		fs.SetOutput(stderr)
		url := fs.String("url", "", "the box's management URL, e.g. https://10.0.0.3:8443")
		token := fs.String("token", os.Getenv("RELAYGATE_TOKEN"), "API bearer token, admin scope for push (default $RELAYGATE_TOKEN)")
		fingerprint := fs.String("fingerprint", "", "trust only this server certificate: sha256:AA:BB:... (the System page's SHA-256)")
		caFile := fs.String("ca-file", "", "trust server certificates signed by this PEM CA")
		insecure := fs.Bool("insecure", false, "do not check the server certificate")
		out := fs.String("out", "", "pull: write the YAML here and its version to FILE.etag (default: stdout)")
		ifMatch := fs.String("if-match", "", "push: the version to replace (default: FILE.etag when present)")
		if err := fs.Parse(args[2:]); err != nil {
			return errUsage
		}
		r, err := newRemote(*url, *token, *caFile, *fingerprint, *insecure)
		if err != nil {
			return err
		}
		if args[1] == "pull" {
			if fs.NArg() > 0 {
				return errUsage
			}
			return configPull(ctx, r, *out, stdout)
		}
		if fs.NArg() != 1 {
			return errUsage
		}
		return configPush(ctx, r, fs.Arg(0), *ifMatch, stdout)
	case "update":
		return updateCommand(ctx, args[1:], stdout, stderr, update.New)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "relaygate %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return errUsage
}
