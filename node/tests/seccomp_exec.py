#!/usr/bin/python3
"""Runs a program under the system-call filter of dhtd's systemd unit, as
systemd would apply it, for a test machine whose process 1 is not systemd:

    seccomp_exec.py UNIT PROGRAM [ARGS...]

The unit's `SystemCallFilter=` lines are read and expanded with
`systemd-analyze syscall-filter` (its groups, such as @system-service, are
systemd's own lists); calls outside the allowed set fail with the unit's
`SystemCallErrorNumber=` (EPERM), and the filter is loaded with
no_new_privs, then PROGRAM is executed. Needs Debian's python3-seccomp.
"""

import errno
import os
import subprocess
import sys

import seccomp


def expand(item, seen):
    """The system calls of `item`, a call or an @group, recursively."""
    if not item.startswith("@"):
        return {item}
    if item in seen:
        return set()
    seen.add(item)
    out = subprocess.run(["systemd-analyze", "syscall-filter", item],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        calls |= expand(line, seen)
    return calls


def main():
    unit, program = sys.argv[1], sys.argv[2:]
    allowed = set()
    denied = set()
    err = errno.EPERM
    with open(unit) as f:
        for line in f:
            line = line.strip()
            if line.startswith("SystemCallFilter="):
                value = line.split("=", 1)[1]
                deny = value.startswith("~")
                items = value.lstrip("~").split()
                calls = set().union(*(expand(i, set()) for i in items))
                (denied if deny else allowed).update(calls)
            elif line.startswith("SystemCallErrorNumber="):
                err = getattr(errno, line.split("=", 1)[1])
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
    applied = 0
    for call in sorted(allowed - denied):
        try:
            f.add_rule(seccomp.ALLOW, call)
            applied += 1
        except (RuntimeError, ValueError):
            pass  # not a call of this architecture
    print(f"seccomp: {applied} system calls allowed, {len(denied)} denied, others fail with {errno.errorcode[err]}",
          file=sys.stderr, flush=True)
    f.load()
    os.execv(program[0], program)


if __name__ == "__main__":
    main()
