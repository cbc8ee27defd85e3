"""Port-forward with the official Python client (kubernetes.stream.portforward, the WebSocket
channel protocol), then TLS with the etcd client certificate through the tunnel and one HTTP
request to etcd's /version. Prints etcd's answer.

usage: python_portforward.py KUBECONFIG NAMESPACE POD PORT CACERT CERT KEY
"""
import ssl
import sys

from kubernetes import client, config
from kubernetes.stream import portforward

kubeconfig, namespace, pod, port, cacert, cert, key = sys.argv[1:8]
port = int(port)
config.load_kube_config(config_file=kubeconfig)
api = client.CoreV1Api()
pf = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
sock = pf.socket(port)
sock.settimeout(10)

context = ssl.create_default_context(cafile=cacert)
context.load_cert_chain(cert, key)
context.check_hostname = False  # the tunnel's far end is the member, whatever its name
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = context.wrap_bio(incoming, outgoing)


def flush():
    data = outgoing.read()
    if data:
        sock.sendall(data)


def pump():
    data = sock.recv(65536)
    if not data:
        raise SystemExit("the tunnel closed: %r" % pf.error(port))
    incoming.write(data)


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush()
        pump()
flush()
tls.write(b"GET /version HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
flush()
response = b""
while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
    try:
        chunk = tls.read(65536)
        if not chunk:
            break
        response += chunk
    except ssl.SSLWantReadError:
        pump()
    except ssl.SSLZeroReturnError:
        break
print(response.split(b"\r\n\r\n", 1)[1].decode())
pf.close()
