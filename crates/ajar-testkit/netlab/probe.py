"""Network probe for ajar's namespace tests, run inside a namespace with `ip netns exec`.

serve ADDR TCP_PORT UDP_PORT       echo server for TCP and UDP; prints "ready"
connect tcp|udp ADDR PORT          exit 0 if an echo came back, 1 if refused/reset, 2 on timeout
hold ADDR PORT SECONDS             keep one TCP connection, echo every 100 ms; exit 0 if it
                                   lived SECONDS, 3 if it was cut (prints when, in seconds)
race ADDR PORT                     per line on stdin, "open": connect every millisecond until one
                                   succeeds; "shut": until one is refused; then print the wall
                                   clock time (Unix seconds) it happened
"""
import socket, sys, threading, time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(addr, tcp_port, udp_port):
    fam = family(addr)
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, tcp_port))
    t.listen(128)
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.bind((addr, udp_port))

    def echo(c):
        try:
            while True:
                d = c.recv(1024)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def tcp():
        while True:
            c, _ = t.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()

    def udp():
        while True:
            d, peer = u.recvfrom(1024)
            u.sendto(d, peer)

    threading.Thread(target=tcp, daemon=True).start()
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def connect(proto, addr, port, timeout=1.0):
    s = socket.socket(family(addr), socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        s.send(b"ping")
        return 0 if s.recv(16) == b"ping" else 1
    except socket.timeout:
        return 2
    except OSError:
        return 1
    finally:
        s.close()


def hold(addr, port, seconds):
    s = socket.create_connection((addr, port), timeout=1.0)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            s.send(b"x")
            if s.recv(16) != b"x":
                raise OSError("no echo")
        except OSError:
            print("%.2f" % (time.monotonic() - start), flush=True)
            return 3
        time.sleep(0.1)
    return 0


def race(addr, port):
    for line in sys.stdin:
        want_open = line.strip() == "open"
        while True:
            s = socket.socket(family(addr), socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect((addr, port))
                ok = True
            except OSError:
                ok = False
            finally:
                s.close()
            if ok == want_open:
                break
            time.sleep(0.001)
        print("%.6f" % time.time(), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "connect":
        sys.exit(connect(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    elif cmd == "hold":
        sys.exit(hold(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    elif cmd == "race":
        race(sys.argv[2], int(sys.argv[3]))
