"""Run a third-party Python tool (kube-hunter) with every non-loopback connection and lookup refused.

kube-hunter can reach out on its own (cloud metadata, api.azurespeed.com): benchmarks must only
ever touch 127.0.0.0/8 and ::1. Usage: [venv_python, "-c", GUARD, *tool_args].
"""

GUARD = """
import ipaddress, runpy, socket, sys
def _ok(host):
    try:
        return ipaddress.ip_address(str(host).split('%')[0]).is_loopback
    except ValueError:
        return host == 'localhost'
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_sendto, _gai = socket.socket.sendto, socket.getaddrinfo
def connect(self, addr, *a):
    if isinstance(addr, tuple) and not _ok(addr[0]):
        raise ConnectionRefusedError(111, 'bench guard: loopback only')
    return _connect(self, addr, *a)
def connect_ex(self, addr, *a):
    if isinstance(addr, tuple) and not _ok(addr[0]):
        return 111
    return _connect_ex(self, addr, *a)
def sendto(self, data, *a):
    if a and isinstance(a[-1], tuple) and not _ok(a[-1][0]):
        raise ConnectionRefusedError(111, 'bench guard: loopback only')
    return _sendto(self, data, *a)
def getaddrinfo(host, *a, **k):
    if host is not None and not _ok(host):
        raise socket.gaierror(-2, 'bench guard: loopback only')
    return _gai(host, *a, **k)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.socket.sendto, socket.getaddrinfo = sendto, getaddrinfo
sys.argv = ['kube-hunter'] + sys.argv[1:]
runpy.run_module('kube_hunter', run_name='__main__')
"""
