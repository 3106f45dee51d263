"""The sandbox's system-call filter: Docker's default seccomp profile, a little stricter.

Every sandboxed process (build steps, containers, shells, the copy helpers) runs under this
filter, compiled once per process with libseccomp (the distribution's library, through the
pyseccomp ctypes binding) and handed to bubblewrap as an fd. The policy follows moby's
`profiles/seccomp/default.json` for a container with Docker's default capabilities and no
CAP_SYS_ADMIN: an allowlist, with every other call failing with EPERM. On top of Docker's:

- TIOCSTI and TIOCLINUX ioctls fail, so nothing in a container can push keystrokes into the
  terminal of `imagewright shell` (they would run on the host after the shell exits);
- `chroot` is allowed (CAP_SYS_CHROOT is in the default set; the copy helpers need it);
- new namespaces of any kind fail (`clone` with CLONE_NEW* flags, `unshare`, `setns`), and
  `clone3`, whose flags a filter cannot read, answers ENOSYS so libc falls back to `clone`.
"""

from __future__ import annotations

import errno
import os
import termios
from functools import cache

from .. import settings
from .._digest import hexdigest

__all__ = ["ALLOWED", "filter_fd", "filter_program"]

# Allowed unconditionally, as in Docker's default profile (names this libseccomp does not know
# on this architecture are skipped).
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 chroot
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop
semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace arch_prctl modify_ldt
"""
ALLOWED = tuple(_ALLOWED.split())
_MOUNTS = ("mount", "umount", "umount2")

# clone's flags that make new namespaces: Docker allows clone only when none is set.
_CLONE_NAMESPACES = 0x7E020000
_AF_VSOCK = 40
# Docker's allowed personality() values: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
# and the query 0xffffffff.
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
_TTY_INJECTION = (termios.TIOCSTI, getattr(termios, "TIOCLINUX", 0x541C))


@cache
def filter_program(mounts: bool = False) -> bytes:
    """The compiled BPF program (for the host's architecture); with `mounts`, also `mount` and
    `umount2`, which Docker allows a container with CAP_SYS_ADMIN (base bootstraps mount /proc
    and /dev into the tree they build).

    Compiling takes libseccomp about 20 ms, which every CLI run would pay on its first sandbox,
    so the program is kept in the store's tools, named by a digest of the policy itself.
    """
    policy = repr((ALLOWED, mounts, _CLONE_NAMESPACES, _AF_VSOCK, _PERSONALITIES, _TTY_INJECTION))
    # (os.uname().machine is platform.machine(), without importing platform: ~1 ms a build)
    name = hexdigest(f"{os.uname().machine} {policy}".encode())[:24]
    kept = settings.home() / "tools" / f"seccomp-{name}.bpf"
    try:
        return kept.read_bytes()
    except OSError:
        pass
    program = _compile(mounts)
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        staged = kept.with_suffix(f".{os.getpid()}.tmp")
        staged.write_bytes(program)
        os.replace(staged, kept)
    except OSError:
        pass  # a read-only store: compile again next time
    return program


def _compile(mounts: bool) -> bytes:
    import pyseccomp as sc

    policy = sc.SyscallFilter(defaction=sc.ERRNO(errno.EPERM))
    for name in ALLOWED + (_MOUNTS if mounts else ()):
        try:
            policy.add_rule(sc.ALLOW, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a system call on this architecture
    policy.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_NAMESPACES, 0))
    policy.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    policy.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.NE, _AF_VSOCK))
    for persona in _PERSONALITIES:
        policy.add_rule(sc.ALLOW, "personality", sc.Arg(0, sc.EQ, persona))
    # ioctl: everything but the requests that type into a terminal. A plain ALLOW would override
    # any conditional rule, so the allowed requests are spelled out as masked prefixes of the
    # 32-bit request number (the kernel ignores the upper bits, and so do these comparisons).
    for mask, value in _prefixes_except(_TTY_INJECTION):
        policy.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.MASKED_EQ, mask, value))
    import tempfile

    with tempfile.TemporaryFile() as out:
        policy.export_bpf(out)
        out.seek(0)
        return out.read()


def _prefixes_except(excluded: tuple[int, ...], bits: int = 32) -> list[tuple[int, int]]:
    """(mask, value) pairs whose matches are exactly the `bits`-bit numbers not in `excluded`."""
    found: list[tuple[int, int]] = []

    def cover(prefix: int, depth: int) -> None:
        shift = bits - depth
        inside = [x for x in excluded if x >> shift == prefix]
        mask = ((1 << bits) - 1) ^ ((1 << shift) - 1)
        if not inside:
            found.append((mask, prefix << shift))
        elif depth < bits:
            cover(prefix << 1, depth + 1)
            cover(prefix << 1 | 1, depth + 1)

    cover(0, 0)
    return found


def filter_fd(mounts: bool = False) -> int:
    """A fresh, readable fd holding the filter, for `bwrap --seccomp` (bwrap reads it whole)."""
    fd = os.memfd_create("imagewright-seccomp", 0)
    os.write(fd, filter_program(mounts))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
