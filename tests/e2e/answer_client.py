#!/usr/bin/env python3
"""Answer an OpenVPN client's password prompts over its management interface,
as a GUI would: static challenge (SCRV1) or dynamic challenge (CRV1).

usage: answer_client.py PORT USER PASSWORD SECRET_B32 MODE [STEP_OFFSET|CODE]
  MODE static   send SCRV1:<b64 password>:<b64 code>
       dynamic  send the password, answer the CRV1 challenge with the code
       plain    send the password alone
A code is computed from SECRET_B32 (RFC 6238) for now + STEP_OFFSET steps,
unless a literal 6-digit CODE is given. Prints what happened; exit 0 when the
dialog completed (not whether the login succeeded: read the client log)."""
import base64, hashlib, hmac, socket, struct, sys, time


def totp(secret_b32, offset):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    step = int(time.time()) // 30 + offset
    h = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = h[19] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def main():
    port, user, password, secret, mode = sys.argv[1:6]
    arg = sys.argv[6] if len(sys.argv) > 6 else "0"
    code = arg if len(arg) == 6 else totp(secret, int(arg))
    deadline = time.time() + 40
    s = None
    while s is None:
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError:
            if time.time() > deadline:
                sys.exit("cannot reach the client's management interface")
            time.sleep(0.1)
    f = s.makefile("rw", newline="\n")

    def send(line):
        f.write(line + "\n")
        f.flush()

    def b64(t):
        return base64.b64encode(t.encode()).decode()

    def esc(t):
        return t.replace("\\", "\\\\").replace('"', '\\"')

    send("hold release")
    challenged = False
    while time.time() < deadline:
        line = f.readline()
        if not line:
            break
        line = line.strip()
        if line.startswith(">PASSWORD:Need 'Auth'"):
            send('username "Auth" %s' % user)
            if challenged:
                send('password "Auth" "CRV1::%s::%s"' % (state, code))
                print("answered the CRV1 challenge")
                return
            if mode == "static":
                send('password "Auth" "SCRV1:%s:%s"' % (b64(password), b64(code)))
                print("sent SCRV1")
                return
            send('password "Auth" "%s"' % esc(password))
            if mode == "plain":
                print("sent the password")
                return
        elif line.startswith(">PASSWORD:Verification Failed: 'Auth' ['CRV1:"):
            crv1 = line.split("['", 1)[1].rsplit("']", 1)[0]
            state = crv1.split(":")[2]
            challenged = True
        elif line.startswith(">HOLD:") and challenged:
            send("hold release")
    sys.exit("dialog did not complete")


main()
