#!/usr/bin/python3
"""Where Apache's CPU goes per handshake: mod_tls, mod_ssl and plain HTTP, profiled.

`make profile` runs it (docs/performance.md, "Where the time goes"). The servers are the load
test's (loadtest.py's Server: same config, same certificates), the client is its hsdrive
(one connection, one handshake, one 1 KiB GET per connection). For each server and each kind
of connection (full TLS 1.3 with the ECDSA key, resumed TLS 1.3 with a ticket; plain HTTP
has one kind) it makes four runs of the same length (and a fifth, short one), each one with a different tool on the
Apache children, so the tools do not weigh on each other's figures:

  1. none: Apache's CPU time per connection (from /proc, as the load test measures it);
  2. `perf record -a -e cpu-clock` (this VM has no hardware counters), kept to the children's
     pids: where the samples fall, grouped by component (mod_tls' C code, the bridge,
     rustls, ring, Rust's std, httpd, APR, libc's malloc, parts of the kernel, ...), each
     sample worth PERIOD_NS of CPU;
  3. `strace -c -f`: system calls per connection, and the failed ones;
  4. `perf stat` on uprobes in libc's malloc/calloc/realloc/free: allocations per connection;
  5. mod_tls only, a short run (1 s, 1 thread): the same uprobes recorded with DWARF
     unwinding, the allocations counted by their first caller outside the allocator
     (--no-alloc-callers skips it, --alloc-only redoes it alone).

Connections per run come from hsdrive's count; the few in flight when a run ends are not
counted, so with -t threads the counts per connection are high by at most threads/connections.

Output: build/profile/profile.md (the tables), profile.json (every figure, all symbols), the
perf and strace files of the last run.
Needs root (perf, strace, uprobes) and build/mod_tls.so, build/loadtest/hsdrive.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest as lt  # noqa: E402

OUT = os.path.join(lt.TOP, 'build', 'profile')
# kind of connection: (TLS version, resumption) for hsdrive; full TLS 1.3 with the ECDSA key,
# and resumed TLS 1.3 with a ticket
KINDS = {'full13': (13, 'none'), 'resume13': (13, 'ticket')}
LIBC = '/lib/x86_64-linux-gnu/libc.so.6'
ALLOC_FNS = ('malloc', 'calloc', 'realloc', 'free')
# perf record's sampling period: 200 µs of CPU. System-wide (-a) with a filter on the
# children's pids at report time: per-thread events (-p) on Apache's 200 threads made every
# context switch dearer and doubled the kernel's share.
PERIOD_NS = 200_000


def c_symbols():
    """The functions of mod_tls' C files (static ones too), from the objects the build made."""
    names = set()
    objs = [os.path.join(lt.TOP, 'build', 'obj', f)
            for f in os.listdir(os.path.join(lt.TOP, 'build', 'obj')) if f.endswith('.o')]
    out = lt.run(['nm', '--defined-only', *objs]).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'Tt':
            names.add(parts[2])
    return names


C_SYMS = set()
KERNEL_PARTS = [
    ('scheduling, wake-ups', r'schedul|switch|wake|futex|irqrestore|spin|^pv_|_pv_|idle|'
     r'enqueue|dequeue|update_curr|ttwu|select_task|pick_next|hrtimer|rcu'),
    ('TCP/IP, sockets', r'tcp|^ip_|inet|^sk_|_sk_|skb|sock|^net|^__dev|loopback|^dst_|^nf_|'
     r'__napi|^__netif|^rt_|epoll|ep_|accept|^__sys_|csum|sendmsg|recvmsg|_copy_(to|from)_iter|'
     r'copy_user|poll|softirq'),
    ('memory, page faults', r'page|pte|^mm|vma|slab|kmem|alloc|mmap|munmap|tlb|folio|'
     r'^do_anonymous|fault|brk|kfree|lru|memcg|obj_stock|zap|unmap'),
    ('random (getrandom)', r'crng|chacha|random'),
    ('files (open, stat)', r'path|dentry|open|^file|fd|filp|vfs|ext4|stat|inode|lookup|'
     r'fput|fget|close'),
    ('syscall entry/exit', r'syscall|entry|exit_to_user|irqentry|^x64_sys|fpregs|xsave'),
]


def kernel_part(sym):
    return next((f'kernel: {name}' for name, rx in KERNEL_PARTS if re.search(rx, sym)),
                'kernel: other')


# (component, test on (dso, symbol)), first match wins; for the kernel, a name.
COMPONENTS = [
    ('kernel', lambda d, s: d.startswith('[kernel') or d == '[vdso]'),
    ('mod_tls C code', lambda d, s: d == 'mod_tls.so' and (s in C_SYMS or s.endswith('@plt'))),
    ('ring (crypto)', lambda d, s: d == 'mod_tls.so' and re.match(
        r'(<)?ring(::|_core)|(__)?(fe|fe4|ge|x25519|p256|ecp_nistz256|nistz256|gcm|aes|sha256|'
        r'sha512|ChaCha20|chacha|poly1305|bn|limbs?|LIMBS?|GFp|CRYPTO|OPENSSL|fiat|sc|'
        r'x25519_sc|vpaes|bsaes|p384|scalar|inline_x25519)_', s)),
    ('rustls', lambda d, s: d == 'mod_tls.so' and 'rustls' in s),
    ('bridge (mtls crate)', lambda d, s: d == 'mod_tls.so' and ('mtls' in s)),
    ('Rust std, alloc, other crates', lambda d, s: d == 'mod_tls.so'),
    ('OpenSSL (libssl, libcrypto)', lambda d, s: d.startswith(('libssl', 'libcrypto'))),
    ('mod_ssl.so', lambda d, s: d == 'mod_ssl.so'),
    ('libc malloc/free', lambda d, s: d.startswith('libc') and re.search(
        r'malloc|free|_int_|tcache|arena|realloc|calloc|unlink_chunk|sysmalloc|memalign', s)),
    ('libc memcpy/memset/str', lambda d, s: d.startswith('libc') and re.search(
        r'mem|str', s)),
    ('libc pthread, other', lambda d, s: d.startswith('libc')),
    ('APR, APR-util', lambda d, s: d.startswith(('libapr', 'libaprutil'))),
    ('httpd core', lambda d, s: d == 'apache2'),
    ('other Apache modules', lambda d, s: d.startswith('mod_')),
    ('other', lambda d, s: True),
]


def drive(srv, opt, kind, tool=None):
    """One hsdrive run against srv with `tool` (argv prefix, minus the pids) attached to the
    children; returns (connections, Apache CPU s over the run, wall s, the children's pids,
    the tool's stderr). A tool that failed, or left an `-o` file empty, raises."""
    version, resume = KINDS.get(kind, (0, 'none'))
    argv = lt.driver_argv(srv, 'ecdsa', opt.threads, opt.seconds, 0, version, resume)
    # a short untimed run first: resumption needs a session, the children warm caches
    lt.run(lt.driver_argv(srv, 'ecdsa', opt.threads, 0.5, 0, version, resume), timeout=60)
    pids = srv.children()
    mon, err = None, ''
    if tool:
        if tool[0] != 'perf':
            pid_args = [a for p in pids for a in ('-p', str(p))]
        else:                           # one comma-separated list, or none system-wide
            pid_args = [] if '-a' in tool else ['-p', ','.join(str(p) for p in pids)]
        mon = subprocess.Popen(tool + pid_args, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        if mon:
            time.sleep(1.5)             # attached to every thread before the first connection
        c0, t0 = srv.cpu(), time.monotonic()
        p = lt.run(argv, timeout=opt.seconds + 60)
        c1, t1 = srv.cpu(), time.monotonic()
    finally:
        if mon:
            mon.send_signal(signal.SIGINT)
            try:
                _, err = mon.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                mon.kill()
                _, err = mon.communicate()
    out = tool[tool.index('-o') + 1] if tool and '-o' in tool else None
    if out and (not os.path.exists(out) or os.path.getsize(out) == 0):
        raise RuntimeError(f'{" ".join(tool[:2])} wrote nothing: {err.strip()[-300:]}')
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f'hsdrive failed: {p.stdout[-300:]} {p.stderr[-300:]}')
    bad = lt.driver_failures(res)
    if bad or not res['done']:
        raise RuntimeError(f'hsdrive: failures {bad} ({res.get("first_error")})')
    # each thread's first connection has no session yet
    if resume != 'none' and srv.tls and res['resumed'] < 0.99 * res['done'] - opt.threads:
        raise RuntimeError(f'only {res["resumed"]} of {res["done"]} resumed')
    return res['done'], c1 - c0, t1 - t0, pids, err


def perf_components(data, pids):
    """Self samples of the children by component, and by symbol (biggest first)."""
    out = lt.run(['perf', 'report', '-i', data, '--no-children', '--sort', 'dso,sym',
                  '-F', 'sample,dso,sym', '--pid', ','.join(str(p) for p in pids),
                  '--stdio', '-g', 'none', '--percent-limit', '0', '-t', '|']).stdout
    comps, syms = {}, []
    for line in out.splitlines():
        parts = line.split('|', 2)
        if line.startswith('#') or len(parts) < 3 or not parts[0].strip().isdigit():
            continue
        n = int(parts[0])
        dso = parts[1].strip()
        sym = re.sub(r'^\[[.k]\]\s*', '', parts[2].strip())
        comp = next(name for name, test in COMPONENTS if test(dso, sym))
        if comp == 'kernel':
            comp = kernel_part(sym)
        comps[comp] = comps.get(comp, 0) + n
        syms.append((n, comp, dso, sym))
    syms.sort(reverse=True)
    return comps, syms


STRACE_LINE = re.compile(r'^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$')


def strace_counts(path):
    """Calls and failed calls (EAGAIN mostly) by system call."""
    counts, errors = {}, {}
    with open(path) as f:
        for line in f:
            m = STRACE_LINE.match(line)
            if m and m.group(6) != 'total':
                counts[m.group(6)] = int(m.group(4))
                if m.group(5):
                    errors[m.group(6)] = int(m.group(5))
    return counts, errors


def perf_stat_counts(text):
    counts = {}
    for line in text.splitlines():
        parts = line.split(',')
        if len(parts) > 2 and parts[2].startswith('probe_libc:'):
            try:
                counts[parts[2].split(':')[1]] = int(parts[0])
            except ValueError:
                pass
    return counts


def profile_case(srv, opt, kind, tag):
    r = {}
    n, cpu, wall, _, _ = drive(srv, opt, kind)
    r['clean'] = dict(conns=n, cpu_us=cpu / n * 1e6, rate=n / wall)
    lt.log(f'  {tag}: {n} connections, {cpu / n * 1e6:.0f} µs Apache CPU each')
    data = os.path.join(OUT, f'perf-{tag}.data')
    n, cpu, wall, pids, _ = drive(srv, opt, kind, ['perf', 'record', '-a', '-e', 'cpu-clock',
                                                    '-c', str(PERIOD_NS), '-g', '-q', '-o',
                                                    data])
    comps, syms = perf_components(data, pids)
    us = PERIOD_NS / 1000 / n          # µs of CPU per connection that one sample stands for
    r['perf'] = dict(conns=n, cpu_us=cpu / n * 1e6, pids=pids,
                     components={k: v * us for k, v in comps.items()},
                     symbols=[(c * us, comp, d, y) for c, comp, d, y in syms if c * us >= 0.1],
                     top=[(c * us, comp, d, y) for c, comp, d, y in syms[:opt.top]],
                     unclassified=[(c * us, y) for c, comp, d, y in syms
                                   if comp.startswith(('Rust std', 'other'))][:opt.top])
    trace = os.path.join(OUT, f'strace-{tag}.txt')
    n, _, _, _, _ = drive(srv, opt, kind, ['strace', '-c', '-f', '-o', trace])
    counts, errors = strace_counts(trace)
    r['syscalls'] = {k: v / n for k, v in counts.items()}
    r['syscall_errors'] = {k: v / n for k, v in errors.items()}
    r['syscalls_conns'] = n
    events = ','.join(f'probe_libc:{f}' for f in ALLOC_FNS)
    n, _, _, _, err = drive(srv, opt, kind, ['perf', 'stat', '-x', ',', '-e', events])
    allocs = perf_stat_counts(err)
    if not allocs:
        raise RuntimeError(f'perf stat counted no allocator calls: {err.strip()[-300:]}')
    r['allocs'] = {k: v / n for k, v in allocs.items()}
    if opt.alloc_callers and srv.variant == 'mod_tls':
        r['alloc_callers'] = alloc_callers(srv, opt, kind, tag)
    return r


def first_caller(frames):
    """The first frame outside libc's allocator and Rust's std/alloc/core: who asked."""
    for sym, dso in frames:
        if 'libc.so' in dso or re.match(r'(<)*(std|core|alloc|hashbrown)::|__rustc|__rdl_|'
                                        r'__GI___libc_|(malloc|realloc|calloc)$', sym):
            continue
        return sym
    return '?'


def owner(sym):
    """Whose code a caller is: rustls, ring, the bridge, mod_tls' C code, or someone else."""
    for name, rx in (('rustls', r'^(<)*rustls'), ('ring', r'^(<)*ring'),
                     ('bridge (mtls)', r'^(<)*mtls'), ('mod_tls C', r'^tls_'),
                     ('webpki', r'^(<)*webpki')):
        if re.match(rx, sym):
            return name
    return 'mod_tls C' if sym in C_SYMS else 'other'


def alloc_callers(srv, opt, kind, tag):
    """malloc/calloc/realloc calls per connection by their first caller outside the
    allocator, from the uprobes with DWARF unwinding (a short run: it is slow)."""
    data = os.path.join(OUT, f'malloc-{tag}.data')
    events = []
    for fn in ALLOC_FNS[:3]:
        events += ['-e', f'probe_libc:{fn}']
    short = argparse.Namespace(**vars(opt))
    short.seconds, short.threads = 1.0, 1
    n, _, _, pids, _ = drive(srv, short, kind, ['perf', 'record', *events, '--call-graph',
                                                 'dwarf,4096', '-q', '-o', data])
    out = lt.run(['perf', 'script', '-i', data, '-F', 'pid,ip,sym,dso',
                  '--pid', ','.join(str(p) for p in pids)]).stdout
    os.unlink(data)
    counts, frames = {}, None
    for line in out.splitlines() + ['']:
        if not line.strip():
            if frames:
                who = first_caller(frames)
                counts[who] = counts.get(who, 0) + 1
            frames = None
            continue
        m = re.match(r'\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$', line)
        if m:
            frames = (frames or []) + [(m.group(1), m.group(2))]
        else:
            frames = []
    owners = {}
    for k, v in counts.items():
        owners[owner(k)] = owners.get(owner(k), 0) + v / n
    return dict(conns=n, owners=owners,
                callers=sorted(((v / n, k) for k, v in counts.items()), reverse=True))


def add_probes():
    del_probes()                        # a run that was killed may have left them
    for fn in ALLOC_FNS:
        p = lt.run(['perf', 'probe', '-q', '-x', LIBC, '--add', fn])
        if p.returncode != 0:
            raise RuntimeError(f'perf probe --add {fn} in {LIBC} failed: '
                               f'{p.stderr.strip()[-300:]}')


def del_probes():
    lt.run(['perf', 'probe', '-q', '-d', 'probe_libc:*'])


def table(results, cols, rows_of, fmt):
    keys = sorted({k for c in cols for k in rows_of(results[c])},
                  key=lambda k: -max(rows_of(results[c]).get(k, 0) for c in cols))
    lines = ['| | ' + ' | '.join(cols) + ' |', '|---|' + '---:|' * len(cols)]
    for k in keys:
        lines.append(f'| {k} | ' + ' | '.join(fmt(rows_of(results[c]).get(k, 0)) for c in cols)
                     + ' |')
    lines.append('| **total** | ' + ' | '.join(fmt(sum(rows_of(results[c]).values()))
                                               for c in cols) + ' |')
    return '\n'.join(lines)


def report(results, opt_top=30):
    cols = list(results)
    md = ['# Where the time goes (profile.py)', '',
          f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; columns: server/kind.', '',
          '## Apache CPU per connection, µs (no tool attached)', '',
          '| | ' + ' | '.join(cols) + ' |', '|---|' + '---:|' * len(cols),
          '| µs | ' + ' | '.join(f'{results[c]["clean"]["cpu_us"]:.0f}' for c in cols) + ' |',
          '| connections/s | ' + ' | '.join(f'{results[c]["clean"]["rate"]:.0f}' for c in cols)
          + ' |',
          '| µs in the perf run (/proc) | ' + ' | '.join(f'{results[c]["perf"]["cpu_us"]:.0f}' for c in cols)
          + ' |', '',
          '## Self time by component, µs per connection (perf record run)', '',
          table(results, cols, lambda r: r['perf']['components'], lambda v: f'{v:.0f}'), '',
          '## System calls per connection (strace -c -f)', '',
          table(results, cols, lambda r: r['syscalls'], lambda v: f'{v:.2f}'), '',
          'Of which failed (EAGAIN, mostly):', '',
          table(results, cols, lambda r: r.get('syscall_errors', {}), lambda v: f'{v:.2f}'), '',
          '## Allocator calls per connection (uprobes on libc)', '',
          table(results, cols, lambda r: r['allocs'], lambda v: f'{v:.1f}'), '']
    for c in cols:
        if 'alloc_callers' in results[c]:
            ac = results[c]['alloc_callers']
            md += [f'## malloc/calloc/realloc per connection by caller, {c} '
                   f'({ac["conns"]} connections)', '', '| calls | caller |', '|---:|---|']
            md += [f'| {v:.1f} | {k} (all) |' for k, v in sorted(ac['owners'].items(),
                                                                 key=lambda x: -x[1])]
            md += [f'| {v:.1f} | `{k[:110]}` |' for v, k in ac['callers'][:opt_top]]
            md.append('')
    for c in cols:
        md += [f'## Top symbols, {c} (µs per connection, self)', '',
               '| µs | component | symbol |', '|---:|---|---|']
        md += [f'| {us:.1f} | {comp} | `{sym[:90]}` |'
               for us, comp, _, sym in results[c]['perf']['top']]
        md.append('')
    return '\n'.join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ports', default='46000-47999', help='127.0.0.1 ports to use, LO-HI')
    ap.add_argument('--seconds', type=float, default=5.0, help='length of each run')
    ap.add_argument('--threads', type=int, default=4, help="hsdrive's threads")
    ap.add_argument('--variants', default='mod_tls,mod_ssl,plain')
    ap.add_argument('--kinds', default=','.join(KINDS))
    ap.add_argument('--top', type=int, default=30, help='top symbols to list')
    ap.add_argument('--alloc-only', action='store_true',
                    help="only mod_tls' allocations by caller, added to the last profile.json")
    ap.add_argument('--no-alloc-callers', dest='alloc_callers', action='store_false',
                    help="skip mod_tls' allocations by caller (perf with DWARF unwinding)")
    opt = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit('profile: perf, strace and uprobes need root')
    for tool in ('perf', 'strace'):
        if not shutil.which(tool):
            sys.exit(f'profile: {tool} not found (apt install linux-perf strace)')
    if not all(os.path.exists(p) for p in (lt.DRIVER, lt.MODULE, os.path.join(lt.TOP, 'build',
                                                                             'obj'))):
        sys.exit('profile: build/mod_tls.so and build/loadtest/hsdrive first (make profile)')
    if not os.path.exists(LIBC):
        sys.exit(f'profile: {LIBC} not found (the allocator probes go there)')
    last = os.path.join(OUT, 'profile.json')
    if opt.alloc_only and not os.path.exists(last):
        sys.exit(f'profile: --alloc-only adds to {last}, and there is none yet')
    try:
        lo, hi = (int(x) for x in opt.ports.split('-'))
    except ValueError:
        sys.exit(f'profile: --ports {opt.ports}: LO-HI expected')
    lt.PORT_RANGE = (lo, hi)
    lt.interrupt_on_sigterm()
    try:
        profile(opt, last)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f'profile: {e}')


def profile(opt, last):
    """The runs of every server and kind, into `last` (profile.json) and profile.md."""
    C_SYMS.update(c_symbols())
    os.makedirs(OUT, exist_ok=True)
    root = tempfile.mkdtemp(prefix='mod_tls-profile-')
    os.chmod(root, 0o755)
    # a docroot of its own with the one file (the load test's is 1.2 GB)
    lt.DOCROOT = os.path.join(root, 'docroot')
    os.makedirs(lt.DOCROOT)
    os.chmod(lt.DOCROOT, 0o755)
    with open(os.path.join(lt.DOCROOT, '1k.bin'), 'wb') as f:
        f.write(os.urandom(lt.SMALL))
    os.chmod(os.path.join(lt.DOCROOT, '1k.bin'), 0o644)
    results = {}
    if opt.alloc_only:
        with open(last) as f:
            results = json.load(f)
        opt.variants = 'mod_tls'
    srv = None
    try:
        add_probes()
        certs = lt.make_certs(root)
        for v in opt.variants.split(','):
            srv = lt.Server(v, root, certs)
            srv.start()
            kinds = opt.kinds.split(',') if srv.tls else ['plain']
            lt.log(f'profile: {v}')
            for kind in kinds:
                if opt.alloc_only:
                    if f'{v}/{kind}' not in results:
                        raise RuntimeError(f'{last} has no {v}/{kind}: make profile first')
                    results[f'{v}/{kind}']['alloc_callers'] = alloc_callers(srv, opt, kind,
                                                                            f'{v}-{kind}')
                    continue
                results[f'{v}/{kind}'] = profile_case(srv, opt, kind, f'{v}-{kind}')
                with open(last, 'w') as f:
                    json.dump(results, f, indent=1)
            srv.stop()
            srv = None
    finally:
        if srv:
            srv.stop()
        del_probes()
        shutil.rmtree(root, ignore_errors=True)
    with open(last, 'w') as f:
        json.dump(results, f, indent=1)
    md = report(results, opt.top)
    with open(os.path.join(OUT, 'profile.md'), 'w') as f:
        f.write(md + '\n')
    print(md)


if __name__ == '__main__':
    main()
