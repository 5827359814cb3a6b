"""Where webhooks may go: public unicast addresses, and the allow-listed networks."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from dispatcher.domain import destinations

REFUSED = [
    "127.0.0.1",  # loopback
    "127.9.9.9",
    "::1",
    "0.0.0.0",  # "this host"
    "::",
    "169.254.169.254",  # link-local: cloud metadata
    "fe80::1",
    "fe80::1%1",
    "10.0.0.1",  # private
    "172.16.5.4",
    "192.168.1.1",
    "fd00::1",  # unique-local
    "100.64.0.1",  # CGNAT, shared address space
    "255.255.255.255",  # broadcast
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",  # global-scope multicast: still no webhook target
    "::ffff:127.0.0.1",  # IPv4-mapped: the kernel connects it over IPv4
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",  # reserved
]
ALLOWED = ["93.184.215.14", "8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_a_non_public_address_is_refused(address: str) -> None:
    assert destinations.allowed(address) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_a_public_address_is_allowed(address: str) -> None:
    assert destinations.allowed(address) is True


def test_the_allow_list_opens_its_networks_only() -> None:
    networks = [ip_network("127.0.0.0/8"), ip_network("fd00:1::/64")]
    assert destinations.allowed("127.0.0.1", networks) is True
    assert destinations.allowed("::ffff:127.0.0.1", networks) is True
    assert destinations.allowed("fd00:1::5", networks) is True
    assert destinations.allowed("fd00:2::5", networks) is False
    assert destinations.allowed("10.0.0.1", networks) is False


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://hooks.example.com/x", "must be an http:// or https:// URL with a host"),
        ("file:///etc/passwd", "must be an http:// or https:// URL with a host"),
        ("http:///hook", "must be an http:// or https:// URL with a host"),
        ("hooks.example.com/x", "must be an http:// or https:// URL with a host"),
        ("http://hooks.example.com:port/", "is not a valid URL"),
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is not a public address"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 is not a public address"),
        ("https://u:p@10.1.2.3/hook?token=x", "10.1.2.3 is not a public address"),
        ("https://hooks.example.com/hook?token=x", None),
        ("HTTP://93.184.215.14/hook", None),
    ],
)
def test_a_webhook_url_is_http_with_a_host_that_is_no_refused_literal(
    url: str, problem: str | None
) -> None:
    assert destinations.url_problem(url) == problem


def test_a_destination_is_host_and_port_without_userinfo_path_or_query() -> None:
    assert destinations.destination("https://u:p@hooks.example.com/h?token=x") == (
        "hooks.example.com:443"
    )
    assert destinations.destination("http://[::1]:8080/h") == "[::1]:8080"
    assert destinations.destination("http://hooks.example.com/h") == "hooks.example.com:80"
