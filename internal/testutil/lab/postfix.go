package lab

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Second addresses of the lab's MX host. The integration tests keep labmx
// on MX4/MX6 port 25 for the whole package, so a Postfix MX started beside
// it listens on these (StartPostfixMX adds them to the mx host's eth0).
const (
	MXAlt4 = "203.0.113.26"
	MXAlt6 = "2001:db8:25::26"
)

// MXName is the name in the lab Postfix MX's self-signed certificate.
const MXName = "mx.lab.example"

//go:embed testdata/postfix/master.cf
var postfixMasterCf []byte

// PostfixOpts configures a lab Postfix instance. Zero values give a working
// instance: the relay on the relay host's addresses delivering everything
// to [MX4], the MX on MX4/MX6 accepting mail for every domain.
type PostfixOpts struct {
	// Name names the instance's directory under the lab's Dir and its log
	// tag, e.g. "pf-relay"; default "postfix-relay" or "postfix-mx".
	Name string
	// Addrs are the addresses smtpd listens on (port 25), e.g. [10.10.0.25].
	Addrs []string
	// Nexthop (relay only) is where all mail goes, in Postfix nexthop form:
	// "[203.0.113.25]" or "[2001:db8:25::25]"; default "[MX4]".
	Nexthop string
	// TLSLevel is smtp_tls_security_level for the relay (none, may,
	// encrypt, secure; default none) and smtpd_tls_security_level for the
	// MX (default may: STARTTLS offered with a self-signed certificate).
	TLSLevel string
	// CAFile (relay) is the PEM file the relay trusts: the MX's own
	// certificate for passthrough, the box's data_dir/inspect-ca.pem for
	// inspect.
	CAFile string
	// TLSMatch (relay, TLSLevel secure) is the name the MX certificate must
	// carry; default MXName.
	TLSMatch string
	// Main holds more main.cf parameters, overriding the defaults.
	Main map[string]string
}

// Postfix is a running Postfix instance in a lab namespace: its own
// config, queue and data directories under the lab's scratch directory, its
// master process a child of the test (master -d).
type Postfix struct {
	lab       *Lab
	Host      string // lab host (namespace) it runs in
	Addrs     []string
	Root      string // everything of the instance lives here
	ConfigDir string
	QueueDir  string
	MailDir   string // MX: the catch-all Maildir
	LogFile   string // the master's output, where postlogd writes the mail log
	CertFile  string // MX: the self-signed certificate (PEM)
	master    *Process
}

// StartPostfixRelay starts the organisation's mail relay: Postfix in the
// relay host accepting mail from the lab's networks and delivering all of it
// to opts.Nexthop.
func (l *Lab) StartPostfixRelay(ctx context.Context, opts PostfixOpts) (*Postfix, error) {
	if opts.Name == "" {
		opts.Name = "postfix-relay"
	}
	if len(opts.Addrs) == 0 {
		opts.Addrs = []string{Relay4, Relay6}
	}
	if opts.Nexthop == "" {
		opts.Nexthop = "[" + MX4 + "]"
	}
	if opts.TLSLevel == "" {
		opts.TLSLevel = "none"
	}
	if opts.TLSMatch == "" {
		opts.TLSMatch = MXName
	}
	main := map[string]string{
		"myhostname":                 "relay.lab.example",
		"myorigin":                   "relay.lab.example",
		"mydestination":              "",
		"local_transport":            "error:no local delivery on the lab relay",
		"relayhost":                  opts.Nexthop,
		"mynetworks":                 "127.0.0.0/8 10.0.0.0/8 [::1]/128 [2001:db8::]/32",
		"smtpd_relay_restrictions":   "permit_mynetworks, reject",
		"smtp_dns_support_level":     "disabled",
		"smtp_tls_security_level":    opts.TLSLevel,
		"smtp_tls_loglevel":          "1",
		"smtp_tls_secure_cert_match": opts.TLSMatch,
		"smtp_line_length_limit":     "0",
		"smtp_connect_timeout":       "10s",
		// Short SMTP client timeouts (defaults: 300s, 180s, 600s): a
		// session that hangs across a kill and restart is given up and
		// retried within test time.
		"smtp_helo_timeout":                  "20s",
		"smtp_mail_timeout":                  "20s",
		"smtp_rcpt_timeout":                  "20s",
		"smtp_data_init_timeout":             "20s",
		"smtp_data_xfer_timeout":             "30s",
		"smtp_data_done_timeout":             "60s",
		"smtp_quit_timeout":                  "10s",
		"disable_mime_output_conversion":     "yes",
		"default_destination_rate_delay":     "0s",
		"smtp_destination_concurrency_limit": "20",
	}
	if opts.CAFile != "" {
		main["smtp_tls_CAfile"] = opts.CAFile
	}
	return l.startPostfix(ctx, "relay", opts, main)
}

// StartPostfixMX starts the remote MX: Postfix in the mx host accepting
// mail for every domain into one Maildir (MailDir), offering STARTTLS with
// a self-signed certificate for MXName (CertFile). Addresses in opts.Addrs
// that the mx host lacks are added to its eth0.
func (l *Lab) StartPostfixMX(ctx context.Context, opts PostfixOpts) (*Postfix, error) {
	if opts.Name == "" {
		opts.Name = "postfix-mx"
	}
	if len(opts.Addrs) == 0 {
		opts.Addrs = []string{MX4, MX6}
	}
	if opts.TLSLevel == "" {
		opts.TLSLevel = "may"
	}
	for _, a := range opts.Addrs {
		if err := l.ensureAddr(ctx, "mx", "eth0", a); err != nil {
			return nil, err
		}
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		return nil, fmt.Errorf("user.Lookup(postfix): %w", err)
	}
	root := filepath.Join(l.Dir, opts.Name)
	cert, key := filepath.Join(root, "mx-cert.pem"), filepath.Join(root, "mx-key.pem")
	main := map[string]string{
		"myhostname":                MXName,
		"mydestination":             "",
		"virtual_mailbox_domains":   "static:all",
		"virtual_mailbox_base":      filepath.Join(root, "mail"),
		"virtual_mailbox_maps":      "static:inbox/",
		"virtual_uid_maps":          "static:" + pu.Uid,
		"virtual_gid_maps":          "static:" + pu.Gid,
		"virtual_minimum_uid":       "1",
		"virtual_mailbox_limit":     "0",
		"smtpd_relay_restrictions":  "permit_auth_destination, reject",
		"smtpd_tls_security_level":  opts.TLSLevel,
		"smtpd_tls_cert_file":       cert,
		"smtpd_tls_key_file":        key,
		"smtpd_tls_loglevel":        "1",
		"smtpd_tls_received_header": "yes",
	}
	return l.startPostfix(ctx, "mx", opts, main)
}

func (l *Lab) ensureAddr(ctx context.Context, host, dev, addr string) error {
	out, _ := l.Run(ctx, host, "ip", "-br", "addr", "show", "dev", dev)
	if strings.Contains(out, " "+addr+"/") {
		return nil
	}
	args := []string{"ip", "addr", "add", addr + "/24", "dev", dev}
	if strings.Contains(addr, ":") {
		args = []string{"ip", "-6", "addr", "add", addr + "/64", "dev", dev, "nodad"}
	}
	_, err := l.Run(ctx, host, args...)
	return err
}

// postfixBase is main.cf common to every lab instance.
func postfixBase(root string, addrs []string) map[string]string {
	var in []string
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		in = append(in, a)
	}
	return map[string]string{
		"compatibility_level": "3.6",
		"queue_directory":     filepath.Join(root, "spool"),
		"data_directory":      filepath.Join(root, "data"),
		"mail_owner":          "postfix",
		"setgid_group":        "postdrop",
		// maillog_file under the scratch directory would need
		// maillog_file_prefixes, which the set-gid sendmail and postqueue
		// read only from the default main.cf; so postlogd logs to the
		// master's stdout, which is the instance's log file.
		"maillog_file":                       "/dev/stdout",
		"inet_interfaces":                    strings.Join(in, ", "),
		"inet_protocols":                     "all",
		"smtp_bind_address":                  "",
		"smtpd_peername_lookup":              "no",
		"smtpd_banner":                       "$myhostname ESMTP lab Postfix",
		"alias_maps":                         "",
		"alias_database":                     "",
		"biff":                               "no",
		"append_dot_mydomain":                "no",
		"message_size_limit":                 "60000000",
		"mailbox_size_limit":                 "0",
		"queue_run_delay":                    "5s",
		"minimal_backoff_time":               "5s",
		"maximal_backoff_time":               "10s",
		"smtpd_error_sleep_time":             "0s",
		"smtpd_client_connection_rate_limit": "0",
		"in_flow_delay":                      "0s",
		"maximal_queue_lifetime":             "1h",
		"bounce_queue_lifetime":              "1h",
		"smtputf8_enable":                    "yes",
		"smtpd_client_restrictions":          "",
		"smtpd_helo_restrictions":            "",
		"smtpd_sender_restrictions":          "",
		"smtpd_recipient_restrictions":       "",
		"smtpd_data_restrictions":            "",
	}
}

func (l *Lab) startPostfix(ctx context.Context, host string, opts PostfixOpts, role map[string]string) (*Postfix, error) {
	root := filepath.Join(l.Dir, opts.Name)
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	p := &Postfix{lab: l, Host: host, Addrs: opts.Addrs, Root: root,
		ConfigDir: filepath.Join(root, "etc"), QueueDir: filepath.Join(root, "spool"),
		LogFile: filepath.Join(l.Dir, opts.Name+"-master.log")}
	os.Remove(p.LogFile)
	// Postfix's unprivileged processes must reach the instance's files by
	// absolute path (virtual(8) writes the Maildir as user postfix).
	// The scratch directory only needs to be traversable (0711); the
	// instance's own directory is readable.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(l.Dir); err == nil && fi.Mode().Perm()&0o011 != 0o011 {
		if err := os.Chmod(l.Dir, fi.Mode().Perm()|0o011); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{p.ConfigDir, p.QueueDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	main := postfixBase(root, opts.Addrs)
	for k, v := range role {
		main[k] = v
	}
	for k, v := range opts.Main {
		main[k] = v
	}
	if base, ok := main["virtual_mailbox_base"]; ok {
		p.MailDir = filepath.Join(base, "inbox")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, err
		}
		if err := chownPostfix(base); err != nil {
			return nil, err
		}
	}
	if c := main["smtpd_tls_cert_file"]; c != "" {
		p.CertFile = c
		if err := selfSigned(ctx, c, main["smtpd_tls_key_file"], MXName, opts.Addrs); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), postfixMasterCf, 0o644); err != nil {
		return nil, err
	}
	// postfix check creates the queue's subdirectories and the data
	// directory with their owners and modes (post-install create-missing).
	// It runs inside the namespace: Postfix checks that inet_interfaces
	// are local.
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), mainCf(main), 0o644); err != nil {
		return nil, err
	}
	if out, err := l.Run(ctx, host, "/usr/sbin/postfix", "-c", p.ConfigDir, "check"); err != nil {
		return nil, fmt.Errorf("postfix -c %s check: %w\n%s", p.ConfigDir, err, out)
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func chownPostfix(path string) error {
	pu, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("user.Lookup(postfix): %w", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	return os.Chown(path, uid, gid)
}

func mainCf(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# main.cf of a lab Postfix instance, written by internal/testutil/lab/postfix.go\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, m[k])
	}
	return b.Bytes()
}

// selfSigned writes a self-signed certificate for name and the addresses.
func selfSigned(ctx context.Context, cert, key, name string, addrs []string) error {
	san := "DNS:" + name
	for _, a := range addrs {
		san += ",IP:" + a
	}
	out, err := exec.CommandContext(ctx, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN="+name,
		"-addext", "subjectAltName="+san).CombinedOutput()
	if err != nil {
		return fmt.Errorf("openssl req -x509 %s: %w\n%s", name, err, out)
	}
	return nil
}

// Start starts the instance's master process (again, after Kill or Stop)
// and waits until smtpd accepts connections on the first address.
func (p *Postfix) Start(ctx context.Context) error {
	master, err := p.lab.Start(p.Host, filepath.Base(p.LogFile),
		"/usr/lib/postfix/sbin/master", "-c", p.ConfigDir, "-d")
	if err != nil {
		return err
	}
	p.master = master
	a := p.Addrs[0]
	for i := 0; ; i++ {
		if _, err := p.lab.Run(ctx, p.Host, "bash", "-c", "exec 3<>/dev/tcp/"+a+"/25"); err == nil {
			return nil
		}
		if err, done := master.Exited(); done {
			return fmt.Errorf("postfix master %s exited: %v\n%s\n%s", p.ConfigDir, err, master.Output(), p.Log())
		}
		if i > 100 || ctx.Err() != nil {
			p.Kill()
			return fmt.Errorf("postfix %s not listening on %s:25 after 10s:\n%s", p.ConfigDir, a, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pids returns the instance's processes: every process whose working
// directory is its queue directory (master and all its children chdir
// there), whatever namespace they are in.
func (p *Postfix) pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == p.QueueDir {
			out = append(out, pid)
		}
	}
	return out
}

// Kill kills the instance at once: SIGKILL to the master and every child,
// as a crash or power loss would. Start brings it back.
func (p *Postfix) Kill() {
	for _, pid := range p.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if p.master != nil {
		p.master.Signal(syscall.SIGKILL, 5*time.Second)
	}
}

// Stop stops the instance cleanly (SIGTERM to the master, which stops its
// children), and kills whatever is left after 10 s.
func (p *Postfix) Stop() error {
	var err error
	if p.master != nil {
		if _, done := p.master.Exited(); !done {
			err = p.master.Signal(syscall.SIGTERM, 10*time.Second)
		}
	}
	for i := 0; i < 50 && len(p.pids()) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range p.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return err
}

// Log returns the instance's mail log so far (across restarts).
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// Flush asks the queue manager to retry every deferred message now.
func (p *Postfix) Flush(ctx context.Context) error {
	out, err := p.lab.Command(ctx, p.Host, "/usr/sbin/postqueue", "-c", p.ConfigDir, "-f").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postqueue -c %s -f: %w\n%s", p.ConfigDir, err, out)
	}
	return nil
}

// Queue counts the messages still in the instance's queue (maildrop,
// incoming, active, deferred, hold).
func (p *Postfix) Queue() (int, error) {
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		err := filepath.WalkDir(filepath.Join(p.QueueDir, q), func(_ string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Sendmail submits a message to the instance with its sendmail command
// (local submission through maildrop and pickup: no network involved). msg
// is a whole message with headers; CRLF or LF line endings.
func (p *Postfix) Sendmail(ctx context.Context, from string, rcpt []string, msg []byte) error {
	args := append([]string{"-C", p.ConfigDir, "-i", "-f", from, "--"}, rcpt...)
	cmd := p.lab.Command(ctx, p.Host, append([]string{"/usr/sbin/sendmail"}, args...)...)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sendmail -C %s: %w\n%s", p.ConfigDir, err, out)
	}
	return nil
}

// Delivered is one message in the MX's Maildir.
type Delivered struct {
	Path      string
	MessageID string // without the angle brackets
	Header    string // as delivered, with the Received lines the MX added
	Body      []byte // after the blank line ending the header, LF line endings
}

// Delivered returns the messages in the MX's Maildir, by Message-ID (a
// message delivered twice appears twice).
func (p *Postfix) Delivered() (map[string][]Delivered, error) {
	out := map[string][]Delivered{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(p.MailDir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			path := filepath.Join(p.MailDir, sub, e.Name())
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			d := Delivered{Path: path}
			hdr, body, _ := bytes.Cut(b, []byte("\n\n"))
			d.Header, d.Body = string(hdr)+"\n", body
			d.MessageID = strings.Trim(headerValue(d.Header, "Message-ID"), "<>")
			out[d.MessageID] = append(out[d.MessageID], d)
		}
	}
	return out, nil
}

// headerValue returns the first value of a header field, unfolded.
func headerValue(hdr, name string) string {
	sc := bufio.NewScanner(strings.NewReader(hdr))
	sc.Buffer(nil, 1<<20)
	var v string
	in := false
	for sc.Scan() {
		line := sc.Text()
		if in {
			if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				v += " " + strings.TrimSpace(line)
				continue
			}
			return v
		}
		if k, rest, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			v, in = strings.TrimSpace(rest), true
		}
	}
	return v
}

// WaitDelivered waits until every Message-ID in ids has been delivered at
// least once, and returns what was delivered.
func (p *Postfix) WaitDelivered(ctx context.Context, ids []string) (map[string][]Delivered, error) {
	for {
		got, err := p.Delivered()
		if err != nil {
			return nil, err
		}
		var missing []string
		for _, id := range ids {
			if len(got[id]) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d messages not delivered (first missing %s): %w", len(missing), len(ids), missing[0], ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
