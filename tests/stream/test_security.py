"""CURVE over real sockets: an allowed subscriber decrypts every message, a
subscriber with an unknown key or no key at all receives nothing, and bad key
files are one-line errors."""

import time

import pytest
from conftest import free_port
from segstream.stream.errors import PublishError
from segstream.stream.publisher import Publisher
from segstream.stream.security import create_keys
from segstream.stream.subscriber import Subscriber
from segstream.stream.wire import eos_message
from test_publisher import subscribed


@pytest.fixture
def keys(tmp_path):
    server_pub, server_secret = create_keys(tmp_path / "server", "server")
    allowed_pub, allowed_secret = create_keys(tmp_path / "client", "robot")
    _, stranger_secret = create_keys(tmp_path / "stranger", "stranger")
    clients = tmp_path / "allowed"
    clients.mkdir()
    (clients / allowed_pub.name).write_bytes(allowed_pub.read_bytes())
    return dict(server_pub=server_pub, server_secret=server_secret, clients=clients,
                allowed=allowed_secret, stranger=stranger_secret)


def send_some(pub, n=20):
    for seq in range(n):
        pub.publish(eos_message("cam0", seq, seq + 1))
        time.sleep(0.01)


def test_only_allowed_subscribers_receive(keys):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Publisher(endpoint, curve_secret=str(keys["server_secret"]), curve_clients=str(keys["clients"])) as pub, \
            Subscriber(endpoint, curve_server_key=str(keys["server_pub"]), curve_secret=str(keys["allowed"])) as ok, \
            Subscriber(endpoint, curve_server_key=str(keys["server_pub"]), curve_secret=str(keys["stranger"])) as bad, \
            Subscriber(endpoint) as plain:
        subscribed(pub, ok, "cam0")  # the allowed one's handshake and subscription are through
        send_some(pub)
        got = [ok.recv(timeout=30) for _ in range(20)]
        assert [m["seq"] for m in got] == list(range(20))
        # The others had as long: whatever reached the allowed one never reached them.
        assert bad.recv(timeout=0.5) is None
        assert plain.recv(timeout=0.5) is None


def test_bad_key_files_are_named(keys, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(PublishError, match="holds no secret key"):
        Publisher(endpoint, curve_secret=str(keys["server_pub"]), curve_clients=str(keys["clients"]))
    with pytest.raises(PublishError, match="allowed-clients folder not found"):
        Publisher(endpoint, curve_secret=str(keys["server_secret"]), curve_clients=str(tmp_path / "nope"))
    with pytest.raises(PublishError, match="cannot read CURVE key"):
        Subscriber(endpoint, curve_server_key=str(tmp_path / "missing.key"), curve_secret=str(keys["allowed"]))
    with pytest.raises(PublishError, match="needs both"):
        Subscriber(endpoint, curve_server_key=str(keys["server_pub"]))


def test_keys_are_not_replaced_without_force_and_the_secret_is_private(tmp_path):
    """Replacing a secret key locks out its peers: refused unless asked; the secret is 0600 from the start."""
    public, secret = create_keys(tmp_path / "keys", "server")
    assert secret.stat().st_mode & 0o777 == 0o600 and public.stat().st_mode & 0o777 == 0o644
    before = secret.read_bytes()
    with pytest.raises(PublishError, match="--force"):
        create_keys(tmp_path / "keys", "server")
    assert secret.read_bytes() == before
    create_keys(tmp_path / "keys", "server", force=True)
    assert secret.read_bytes() != before
