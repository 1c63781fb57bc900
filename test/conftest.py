import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def _cleanup():
    yield
    harness.cleanup_tmp()


@pytest.fixture(scope='session')
def module_path():
    if not os.path.isfile(harness.MODULE_PATH) and not harness.MODSSL:
        pytest.fail(f'{harness.MODULE_PATH} does not exist: run make first',
                    pytrace=False)
    return harness.MODULE_PATH


@pytest.fixture(scope='session')
def ca():
    return harness.CA()


@pytest.fixture(scope='session')
def docroot():
    d = harness.mkdtemp('tls-docroot-')
    return harness.make_docroot(os.path.join(d, 'htdocs'))


@pytest.fixture(scope='session')
def certs(ca):
    """The commonly used certificates, by purpose."""
    return {
        'a': ca.issue(['a.test']),
        'b': ca.issue(['b.test']),
        'ab': ca.issue(['a.test', 'b.test']),
        'a_ec': ca.issue(['a.test'], key_type='ec'),
    }


@pytest.fixture
def allow_log(request):
    """Call with regexes of warn-or-worse error log lines this test expects."""
    allowed = []
    request.node._allowed_log = allowed

    def add(*patterns):
        allowed.extend(patterns)
    return add


@pytest.fixture
def check_survives(server, ca, request):
    """Run around a bad client, against the test module's `server` fixture (an Apache with a
    `port`): yields expect(text, count=1, level='tls:info'), with which the test names the
    line (with the client address) its client leaves in the error log (text, or a compiled
    regex); then waits for those lines and verifies the server (harness.assert_unharmed)."""
    pid = server.read_pid()
    assert pid and server.alive()
    offset = server.log_size()
    expected = []

    def expect(text, count=1, level='tls:info'):
        text = text.pattern if isinstance(text, re.Pattern) else re.escape(text)
        expected.append((rf'\[{level}\] .*\[client 127\.0\.0\.1:\d+\] .*{text}', count))
    yield expect
    assert expected, 'the test named no log line to wait for'
    for pattern, count in expected:
        server.wait_log(pattern, offset, count=count)
    harness.assert_unharmed(server, ca, pid, offset, getattr(request.node, '_allowed_log', []))


@pytest.fixture(autouse=True)
def _error_log_check(request):
    """Fail a test when any running Apache logged [warn] or worse lines
    that neither the instance nor the test declared as expected, or a sanitizer reported
    (`make asan`)."""
    reports_before = harness.sanitizer_reports()
    yield
    problems = []
    for name in sorted(harness.sanitizer_reports() - reports_before):
        with open(os.path.join(harness.SANITIZER_DIR, name), errors='replace') as f:
            problems.append(f'sanitizer report {name}:\n' + ''.join(f.readlines()[:80]))
    allowed = getattr(request.node, '_allowed_log', [])
    for inst in list(harness.STARTED):
        bad = inst.bad_log_lines(allowed)
        inst.consume_log()
        if inst not in harness.INSTANCES:
            harness.STARTED.remove(inst)
        if bad:
            problems.append(f'{inst.error_log}:\n  ' + '\n  '.join(bad))
    if problems:
        pytest.fail('unexpected error log lines:\n' + '\n'.join(problems),
                    pytrace=False)


@pytest.fixture
def apache_factory(docroot, module_path):
    """Make Apache instances that are stopped when the test ends."""
    made = []

    def make(body, **kw):
        kw.setdefault('docroot', docroot)
        inst = harness.Apache(body, **kw)
        made.append(inst)
        return inst
    yield make
    for inst in made:
        inst.stop()


def pytest_terminal_summary(terminalreporter):
    """Name what the machine got wrong, apart from the tests' own results."""
    if harness.ENVIRONMENT_PROBLEMS:
        terminalreporter.section('environment problems (not mod_tls failures)')
        for tag, line in harness.ENVIRONMENT_PROBLEMS.items():
            terminalreporter.line(f'{harness.ENVIRONMENT_LINES[tag]}\n  seen: {line}')
