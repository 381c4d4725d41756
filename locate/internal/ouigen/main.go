// Command ouigen writes the MAC vendor list that package locate embeds
// (locate/oui.txt.gz) from the IEEE registry's CSV files (MA-L oui.csv,
// MA-M mam.csv, MA-S oui36.csv, IAB iab.csv). scripts/update-oui runs it;
// the appliance never fetches the list at run time.
//
// The output is gzip of sorted lines "PREFIX\tOrganization", PREFIX being
// 6 (MA-L), 7 (MA-M) or 9 (MA-S, IAB) upper-case hex digits.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/relaygate/relaygate/locate/internal/ouigen/oui"
)

func main() {
	out := flag.String("o", "locate/oui.txt.gz", "output file")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ouigen [-o FILE] CSV...")
		os.Exit(2)
	}
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "ouigen:", err)
		os.Exit(1)
	}
}

func run(out string, paths []string) error {
	reg := oui.Registry{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		n, err := reg.ReadCSV(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		fmt.Fprintf(os.Stderr, "ouigen: %s: %d assignments\n", p, n)
	}
	if len(reg) < 1000 {
		return fmt.Errorf("only %d assignments read: not the IEEE registry CSV?", len(reg))
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := reg.WriteGzip(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("rename %s: %w", out, err)
	}
	fmt.Fprintf(os.Stderr, "ouigen: wrote %d prefixes to %s\n", len(reg), out)
	return nil
}
