// Package lab drives the network-namespace lab of scripts/lab.sh from Go
// tests: it brings the lab up and down, runs commands in its hosts, and
// starts and stops the appliance and the lab's MX as separate processes
// (goroutines of a process that switched one thread into a namespace can
// escape it, so nothing here calls setns).
package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Host addresses of the lab (see scripts/lab.sh).
const (
	Relay4 = "10.10.0.25"
	Relay6 = "2001:db8:10::25"
	PC4    = "10.20.0.50"
	PC6    = "2001:db8:20::50"
	MX4    = "203.0.113.25"
	MX6    = "2001:db8:25::25"
	Mgmt4  = "10.255.0.1"
)

// Root returns the repository root (the directory holding go.mod).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Lab is one running lab.
type Lab struct {
	Prefix string
	Dir    string // scratch directory: configs, logs, data
	Bin    string // directory with the appliance, labmx and labbridgemib binaries
	opts   Options
}

// Options choose the lab's optional parts; the zero value is the plain lab.
type Options struct {
	// AccessSwitch puts the PC behind the access switch AccessSwitch and
	// gives both switches SNMP agents and lldpd on the management network
	// (scripts/lab.sh with LAB_SWITCHES; see switches.go).
	AccessSwitch bool
}

// Up brings a lab up under prefix. bin holds prebuilt binaries; when empty,
// they are built into dir/bin.
func Up(prefix, dir, bin string) (*Lab, error) { return UpWith(prefix, dir, bin, Options{}) }

// UpWith brings a lab with opts up under prefix, as Up does.
func UpWith(prefix, dir, bin string, opts Options) (*Lab, error) {
	l := &Lab{Prefix: prefix, Dir: dir, Bin: bin, opts: opts}
	if l.Bin == "" {
		l.Bin = filepath.Join(dir, "bin")
		for _, pkg := range []string{"./cmd/appliance", "./internal/testutil/labmx", "./internal/testutil/labbridgemib"} {
			cmd := exec.Command("go", "build", "-o", l.Bin+"/", pkg)
			cmd.Dir = Root()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			}
		}
	}
	if err := l.script("up"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) script(verb string) error {
	cmd := exec.Command("bash", filepath.Join(Root(), "scripts", "lab.sh"), verb)
	cmd.Env = append(os.Environ(), "LAB="+l.Prefix, "LAB_BIN="+l.Bin)
	if l.opts.AccessSwitch {
		// lldpd's unprivileged process must reach snmpd's AgentX socket
		// in dir: Dir and its parents must be searchable by others.
		dir := filepath.Join(l.Dir, "switches")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "LAB_SWITCHES="+dir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab.sh %s: %v\n%s", verb, err, out)
	}
	return nil
}

// Down removes the lab's namespaces and everything running in them.
func (l *Lab) Down() error { return l.script("down") }

// NS returns the namespace name of a lab host (relay, pc, switch, box,
// router, mx, admin; access with Options.AccessSwitch).
func (l *Lab) NS(host string) string { return l.Prefix + "-" + host }

// Command returns a command that runs in host's namespace.
func (l *Lab) Command(ctx context.Context, host string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(host)}, args...)...)
}

// Run runs a command in host's namespace and returns its combined output.
func (l *Lab) Run(ctx context.Context, host string, args ...string) (string, error) {
	out, err := l.Command(ctx, host, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w", host, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Process is a long-running program in the lab.
type Process struct {
	Cmd  *exec.Cmd
	Log  string
	from int64 // offset of this process's output in Log
	done chan error
}

// Start starts a program in host's namespace with output to logName in Dir.
func (l *Lab) Start(host, logName string, args ...string) (*Process, error) {
	logPath := filepath.Join(l.Dir, logName)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var from int64
	if fi, err := f.Stat(); err == nil {
		from = fi.Size()
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(host)}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %v: %w", args, err)
	}
	p := &Process{Cmd: cmd, Log: logPath, from: from, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// Signal sends sig and waits up to timeout for the process to exit.
func (p *Process) Signal(sig syscall.Signal, timeout time.Duration) error {
	if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-p.done:
		p.done <- err
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("process %d did not exit within %s after %v", p.Cmd.Process.Pid, timeout, sig)
	}
}

// Exited returns the exit error once the process has ended, or false.
func (p *Process) Exited() (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	default:
		return nil, false
	}
}

// Output returns what the process has logged so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.Log)
	if int64(len(b)) < p.from {
		return ""
	}
	return string(b[p.from:])
}

// Config is the appliance configuration used in the lab, for a mode: the
// one scripts/lab-config.sh writes for the demo and the benchmarks, with
// extra YAML appended.
func Config(mode, dataDir string, extra string) string {
	out, err := exec.Command("bash", "-c", `. "$1" && lab_config "$2" "$3" "$4"`, "lab-config",
		filepath.Join(Root(), "scripts", "lab-config.sh"), mode, dataDir, extra).Output()
	if err != nil {
		panic(fmt.Sprintf("scripts/lab-config.sh: %v", err))
	}
	return string(out)
}

// Appliance is a running appliance daemon in the lab's box namespace.
type Appliance struct {
	*Process
	lab     *Lab
	CfgPath string
	DataDir string
	Token   string
}

// StartAppliance writes cfg to Dir/name.yaml and runs the daemon with it,
// waiting until its API answers. The data directory is Dir/data unless cfg
// says otherwise; a token is created for the API.
func (l *Lab) StartAppliance(ctx context.Context, name, cfg string) (*Appliance, error) {
	path := filepath.Join(l.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return l.StartApplianceFile(ctx, path)
}

// StartApplianceFile runs the daemon with an existing configuration file.
func (l *Lab) StartApplianceFile(ctx context.Context, path string) (*Appliance, error) {
	dataDir := filepath.Join(l.Dir, "data")
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "data_dir: "); ok {
				dataDir = strings.TrimSpace(v)
			}
		}
	}
	p, err := l.Start("box", "appliance.log", filepath.Join(l.Bin, "appliance"), "run", "--config", path)
	if err != nil {
		return nil, err
	}
	a := &Appliance{Process: p, lab: l, CfgPath: path, DataDir: dataDir}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err, done := p.Exited(); done {
			return nil, fmt.Errorf("appliance exited: %v\n%s", err, p.Output())
		}
		if strings.Contains(p.Output(), "msg=serving") && a.Token == "" {
			out, err := exec.Command(filepath.Join(l.Bin, "appliance"), "token", "create", "--data-dir", dataDir, "--name", "lab").Output()
			if err != nil {
				return nil, fmt.Errorf("token create: %w", err)
			}
			a.Token = strings.TrimSpace(string(out))
		}
		if a.Token != "" {
			var st map[string]any
			if err := a.API(ctx, "GET", "/api/v1/status", nil, &st); err == nil && st["serving"] == true {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			a.Signal(syscall.SIGKILL, 5*time.Second)
			return nil, fmt.Errorf("appliance not serving after 20s:\n%s", p.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// API calls the appliance's HTTP API from the admin host and decodes the
// JSON answer into out. A status other than 2xx is an error with the body.
func (a *Appliance) API(ctx context.Context, method, path string, body []byte, out any) error {
	code, resp, err := a.APIRaw(ctx, method, path, body)
	if err != nil {
		return err
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, code, resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w (%s)", method, path, err, resp)
		}
	}
	return nil
}

// APIRaw returns the status code and body of an API call, made with curl
// from the admin namespace (the API listens on the management port only).
func (a *Appliance) APIRaw(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	args := []string{"curl", "-sk", "--max-time", "10", "-X", method, "-o", "-", "-w", "\n%{http_code}",
		"-H", "Authorization: Bearer " + a.Token}
	if body != nil {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@-")
	}
	args = append(args, "https://"+Mgmt4+":8443"+path)
	cmd := a.lab.Command(ctx, "admin", args...)
	if body != nil {
		cmd.Stdin = bytes.NewReader(body)
	}
	out, err := cmd.Output()
	if err != nil {
		return 0, nil, fmt.Errorf("curl %s: %w", path, err)
	}
	i := bytes.LastIndexByte(out, '\n')
	var code int
	fmt.Sscanf(string(out[i+1:]), "%d", &code)
	return code, out[:i], nil
}

// MX is the lab's remote mail server (labmx) in the mx namespace.
type MX struct {
	*Process
	Dir string
}

// StartMX starts labmx on the MX's IPv4 and IPv6 addresses, port 25.
func (l *Lab) StartMX() (*MX, error) {
	dir := filepath.Join(l.Dir, "mx")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := l.Start("mx", "labmx.log", filepath.Join(l.Bin, "labmx"),
		"-listen", MX4+":25", "-listen", "["+MX6+"]:25", "-dir", dir)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 50; i++ {
		if _, err := l.Run(context.Background(), "mx", "bash", "-c", "exec 3<>/dev/tcp/"+MX4+"/25"); err == nil {
			return &MX{Process: p, Dir: dir}, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("labmx not listening:\n%s", p.Output())
}

// Message is one line of labmx's messages.jsonl.
type Message struct {
	Time     time.Time `json:"time"`
	Client   string    `json:"client"`
	Helo     string    `json:"helo"`
	MailFrom string    `json:"mail_from"`
	Rcpt     []string  `json:"rcpt"`
	Size     int       `json:"size"`
}

// Messages returns what the MX has received so far.
func (m *MX) Messages() ([]Message, error) {
	f, err := os.Open(filepath.Join(m.Dir, "messages.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Message
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var msg Message
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return nil, fmt.Errorf("messages.jsonl: %w", err)
		}
		out = append(out, msg)
	}
	return out, sc.Err()
}

// WaitMessage waits until a message from mailFrom has arrived.
func (m *MX) WaitMessage(mailFrom string, timeout time.Duration) (Message, error) {
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := m.Messages()
		if err != nil {
			return Message{}, err
		}
		for _, msg := range msgs {
			if msg.MailFrom == mailFrom {
				return msg, nil
			}
		}
		if time.Now().After(deadline) {
			return Message{}, fmt.Errorf("no message from %s at the MX after %s (have %d)", mailFrom, timeout, len(msgs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Swaks sends one message with swaks from host to server and returns the
// transcript; err is non-nil when swaks reports a failure.
func (l *Lab) Swaks(ctx context.Context, host, server, from, to string, extra ...string) (string, error) {
	args := append([]string{"swaks", "--server", server, "--port", "25", "--from", from, "--to", to,
		"--helo", host + ".lab.example", "--timeout", "15"}, extra...)
	return l.Run(ctx, host, args...)
}
