"""Realistic synthetic alerts (ECS + Kibana alert fields) for the demo, backtests and benchmarks.

Shapes follow real Elastic Security alerts: literal dotted ``kibana.*`` keys beside nested ECS
objects. Values come from documentation ranges (192.0.2.0/24, 203.0.113.0/24, example.com).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

Source = dict[str, Any]

USERS = [
    "alice@example.com",
    "bob@example.com",
    "sre@example.com",
    "dev@example.com",
    "carol@example.com",
]
PROJECTS = ["sandbox-tools", "prod-payments", "prod-search", "research-ml"]
#: The one file every synthetic malware alert is about (the demo's threat intel knows it).
FAKE_MALWARE_SHA256 = hashlib.sha256(b"fake_malware.exe").hexdigest()
#: A freshly registered look-alike domain (the demo's WHOIS and threat intel know it).
PHISHING_DOMAIN = "secure-login-update.example.net"


def _kibana(
    rule_name: str, rule_type: str, severity: str, uuid: str, ts: datetime, reason: str
) -> Source:
    return {
        "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kibana.alert.uuid": uuid,
        "kibana.alert.rule.name": rule_name,
        "kibana.alert.rule.rule_id": hashlib.md5(rule_name.encode()).hexdigest(),
        "kibana.alert.rule.uuid": hashlib.sha1(rule_name.encode()).hexdigest(),
        "kibana.alert.rule.type": rule_type,
        "kibana.alert.severity": severity,
        "kibana.alert.risk_score": {"low": 21, "medium": 47, "high": 73, "critical": 99}[severity],
        "kibana.alert.workflow_status": "open",
        "kibana.alert.status": "active",
        "kibana.alert.reason": reason,
        "kibana.space_ids": ["default"],
        "event.kind": "signal",
    }


def gcp_key(rng: random.Random, uuid: str, ts: datetime) -> Source:
    user, project = rng.choice(USERS), rng.choice(PROJECTS)
    src = _kibana(
        "GCP Service Account Key Creation",
        "query",
        "medium",
        uuid,
        ts,
        f"iam event by {user} on {project} created medium alert GCP Service Account Key Creation.",
    )
    src.update(
        {
            "cloud": {"provider": "gcp", "project": {"id": project}},
            "user": {"email": user},
            "source": {"ip": f"198.51.100.{rng.randint(1, 254)}"},
            "gcp.audit.resource_name": (
                f"projects/{project}/serviceAccounts/"
                f"ci-{rng.randint(1, 9)}@{project}.iam.gserviceaccount.com"
            ),
            "enriched_employee": {"division": rng.choice(["Platform", "Research", "Sales"])},
            "event.action": "google.iam.admin.v1.CreateServiceAccountKey",
        }
    )
    return src


def aws_root(rng: random.Random, uuid: str, ts: datetime) -> Source:
    src = _kibana(
        "AWS Management Console Root Login",
        "query",
        "high",
        uuid,
        ts,
        "iam event created high alert AWS Management Console Root Login.",
    )
    src.update(
        {
            "cloud": {"provider": "aws", "account": {"id": "123456789012"}},
            "source": {"ip": f"203.0.113.{rng.randint(1, 254)}", "geo": {"country_iso_code": "US"}},
            "user_agent": {"original": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1)"},
            "aws.cloudtrail.console_login.additional_eventdata.mfa_used": rng.random() < 0.7,
        }
    )
    return src


def okta_country(rng: random.Random, uuid: str, ts: datetime) -> Source:
    vpn = rng.random() < 0.4
    ip = f"192.0.2.{rng.randint(1, 254)}" if vpn else f"203.0.113.{rng.randint(1, 254)}"
    src = _kibana(
        "Okta Sign-In From New Country",
        "new_terms",
        "medium",
        uuid,
        ts,
        "authentication event created medium alert Okta Sign-In From New Country.",
    )
    src.update(
        {
            "user": {"email": rng.choice(USERS)},
            "source": {
                "ip": ip,
                "geo": {
                    "country_name": rng.choice(["Brazil", "Netherlands", "Japan"]),
                    "city_name": "Somewhere",
                },
            },
            "okta.client.user_agent.raw_user_agent": "Mozilla/5.0 <script>alert(1)</script>",
            "event.dataset": "okta.system",
        }
    )
    return src


def endpoint_malware(rng: random.Random, uuid: str, ts: datetime) -> Source:
    host = f"Host-{rng.randint(100, 999)}"
    src = _kibana(
        "Endpoint Security",
        "query",
        "medium",
        uuid,
        ts,
        f"malware event with process malware writer, file fake_malware.exe, on {host} "
        "created medium alert Endpoint Security.",
    )
    src.update(
        {
            "host": {"name": host, "ip": ["10.249.37.72", "10.150.39.243"]},
            # Elastic Defend's endpoint id: what an isolation names (issue 14)
            "agent": {"id": f"00000000-0000-4000-8000-000000000{host[-3:]}", "type": "endpoint"},
            "user": {"name": "user1"},
            "file": {
                "name": "fake_malware.exe",
                "path": "C:\\Users\\user1\\fake_malware.exe",
                "hash": {"sha256": FAKE_MALWARE_SHA256},
            },
            "process": {"executable": "C:\\malware writer.exe"},
            "event.category": "malware",
            "event.code": "malicious_file",
        }
    )
    return src


def threat_match(rng: random.Random, uuid: str, ts: datetime) -> Source:
    host = f"security-linux-{rng.randint(1, 5)}"
    src = _kibana(
        "threat-match-rule",
        "threat_match",
        "low",
        uuid,
        ts,
        f"event on {host} created low alert threat-match-rule.",
    )
    src.update(
        {
            "host": {"name": host},
            "url": {"domain": PHISHING_DOMAIN},
            "threat": {
                "enrichments": [
                    {
                        "matched": {
                            "atomic": PHISHING_DOMAIN,
                            "field": "url.domain",
                            "type": "indicator_match_rule",
                        }
                    }
                ]
            },
        }
    )
    return src


def unrouted(rng: random.Random, uuid: str, ts: datetime) -> Source:
    src = _kibana(
        "Unusual Process Execution <!channel>",
        "query",
        "low",
        uuid,
        ts,
        "process event created low alert. <http://evil.example|click me>",
    )
    src.update({"host": {"name": f"web-{rng.randint(1, 9)}"}, "user": {"name": "www-data"}})
    return src


KINDS: dict[str, Callable[[random.Random, str, datetime], Source]] = {
    "gcp_key": gcp_key,
    "aws_root": aws_root,
    "okta_country": okta_country,
    "endpoint_malware": endpoint_malware,
    "threat_match": threat_match,
    "unrouted": unrouted,
}


def generate(
    count: int,
    *,
    seed: int = 7,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
) -> Iterator[Source]:
    """``count`` alerts cycling through every kind, timestamps ``step`` apart."""
    rng = random.Random(seed)
    ts = start or datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    makers = list(KINDS.values())
    for i in range(count):
        uuid = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
        yield makers[i % len(makers)](rng, uuid, ts + i * step)


def auth_events(count: int, *, seed: int = 5, end: datetime | None = None) -> Iterator[Source]:
    """Okta sign-in events (ECS) for ``locate user``: who logged in from where, with what app."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    places = [
        ("192.0.2.10", "Amsterdam", "Netherlands"),
        ("198.51.100.23", "Austin", "United States"),
        ("203.0.113.50", "São Paulo", "Brazil"),
    ]
    apps = ["okta.system", "google_workspace.login"]
    for i in range(count):
        ip, city, country = rng.choice(places)
        stamp = end - timedelta(minutes=rng.randint(1, 6 * 24 * 60))
        yield {
            "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": {
                "dataset": rng.choice(apps),
                "action": "user.session.start",
                "outcome": "success",
                "id": f"auth-{seed}-{i}",
            },
            "user": {"email": rng.choice(USERS)},
            "source": {"ip": ip, "geo": {"city_name": city, "country_name": country}},
        }


def storm(count: int, *, seed: int, at: datetime) -> Iterator[Source]:
    """A burst: ``count`` sign-in alerts of one rule at once, each of its own user (so no
    dedup threads them): more than the storm threshold, so they fold into one group."""
    rng = random.Random(seed)
    for i in range(count):
        uuid = hashlib.sha256(f"storm-{seed}-{i}".encode()).hexdigest()
        src = okta_country(rng, uuid, at)
        src["user"] = {"email": f"intern{seed % 1000}-{i}@example.com"}
        yield src
