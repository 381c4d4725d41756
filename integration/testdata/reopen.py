# reopen.py SRC DST PORT: two SMTP sessions from SRC:PORT to DST:25, one
# after the other, each ended by QUIT and the server's close, so that the
# second reuses the four-tuple the first left in TIME_WAIT on the server's
# side. Prints the 221 replies and how many SYNs this host had to
# retransmit (/proc/net/netstat, TcpExt TCPSynRetrans) meanwhile.
import errno
import socket
import sys
import time


def syn_retrans():
    with open("/proc/net/netstat") as f:
        lines = [l.split() for l in f if l.startswith("TcpExt:")]
    return int(lines[1][lines[0].index("TCPSynRetrans")])


def reply(f):
    while True:
        line = f.readline().decode()
        if not line:
            raise SystemExit("connection closed before a reply")
        if line[3:4] != "-":
            return line.strip()


src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
before = syn_retrans()


def connect():
    # This side closed last: until the server's ACK of its FIN arrives the
    # four-tuple is still in LAST_ACK here (EADDRNOTAVAIL); wait that out.
    for _ in range(100):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, port))
        s.settimeout(10)
        try:
            s.connect((dst, 25))
            return s
        except OSError as e:
            s.close()
            if e.errno != errno.EADDRNOTAVAIL:
                raise
            time.sleep(0.01)
    raise SystemExit("the port stayed busy on this side")


for i in range(2):
    s = connect()
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO reopen.lab.example\r\n")
    reply(f)
    s.sendall(b"QUIT\r\n")
    print(reply(f))
    if f.read() != b"":  # the server closes first: its side keeps TIME_WAIT
        raise SystemExit("data after 221")
    f.close()
    s.close()
print("syn_retransmits=%d" % (syn_retrans() - before))
