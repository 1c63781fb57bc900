"""Harness self-check aid: with TLS_TEST_MODSSL=1 the harness rewrites the
mod_tls directives of a test config into rough mod_ssl equivalents, so the
harness and the tests' client side can be exercised without mod_tls.

Only the simple directives translate; tests of mod_tls specific behaviour
(cipher preferences, strict SNI, config error messages) are expected to fail
in this mode. It is never used in a normal run.
"""
import re

PROTOCOLS = {
    'default': 'all', 'TLSv1.2+': '-all +TLSv1.2 +TLSv1.3', 'v1.2+': '-all +TLSv1.2 +TLSv1.3',
    'TLSv0x0303+': '-all +TLSv1.2 +TLSv1.3', 'TLSv1.3+': '-all +TLSv1.3',
    'v1.3+': '-all +TLSv1.3', 'TLSv0x0304+': '-all +TLSv1.3',
}


def translate(body, run_dir):
    engines = re.findall(r'^\s*TLSEngine\s+(\S+)', body, re.M)
    out = [f'SSLSessionCache "shmcb:{run_dir}/scache(512000)"']
    for line in body.splitlines():
        s = line.strip()
        words = s.split()
        if not words:
            out.append(line)
            continue
        d = words[0]
        if d == 'TLSEngine':
            continue
        if d == 'TLSCertificate':
            out.append(f'SSLCertificateFile {words[1]}')
            if len(words) > 2:
                out.append(f'SSLCertificateKeyFile {words[2]}')
            continue
        if d == 'TLSProtocol':
            out.append(f'SSLProtocol {PROTOCOLS.get(words[1], words[1])}')
            continue
        if d == 'TLSOptions':
            out.append('SSLOptions ' + ' '.join(words[1:]))
            continue
        if d.startswith('TLS'):
            continue
        out.append(line)
        m = re.match(r'<VirtualHost\s+([^>]+)>', s)
        if m:
            addr = m.group(1).strip()
            port = addr.rsplit(':', 1)[-1]
            if addr in engines or port in engines:
                out.append('  SSLEngine on')
    return '\n'.join(out) + '\n'
