#!/usr/bin/env python3
"""The kind of auth-user-pass-verify hook OpenVPN admins deploy today,
written for the benchmark: via-file credentials, a sqlite3 lookup, an
argon2-cffi verify of the same PHC hash tollgate stores. Exit 0 accepts."""
import os
import sqlite3
import sys

from argon2 import PasswordHasher

with open(sys.argv[-1]) as f:
    user = f.readline().rstrip("\n")
    password = f.readline().rstrip("\n")
db = sqlite3.connect(os.environ.get("TOLLGATE_BENCH_DB", "/var/lib/tollgate/tollgate.db"))
row = db.execute("SELECT password_hash, enabled FROM users WHERE name = ?", (user,)).fetchone()
if row is None or not row[1]:
    sys.exit(1)
try:
    PasswordHasher().verify(row[0], password)
except Exception:  # wrong password, or a hash it cannot read
    sys.exit(1)
sys.exit(0)
