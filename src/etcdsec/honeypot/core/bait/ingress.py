"""What ingress-nginx and its users leave (networking.k8s.io/v1): its ConfigMap and IngressClass, the
Ingresses of the shop and of grafana under /registry/ingress/ (the prefix kube-apiserver kept from
extensions/v1beta1), their TLS Secrets as cert-manager writes them from the letsencrypt-prod
ClusterIssuer (each private key a honeytoken), and prod's NetworkPolicies that let only the
controller in. The controller's Deployment is in workloads.py, its NodePort Service in services.py."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from etcdsec.honeypot.core.bait import pki
from etcdsec.honeypot.core.bait.plant import CLUSTER_AGE, Plant
from etcdsec.honeypot.core.bait.workloads import INGRESS_LABELS

CONTROLLER, CLASS, NS = "k8s.io/ingress-nginx", "nginx", "ingress-nginx"
APPLIED: dict[str, tuple[str, ...] | None] = {"kubectl-client-side-apply": None}
RENEWED_EVERY_DAYS = 60  # cert-manager renews a 90-day certificate 30 days before it expires


@dataclass(frozen=True)
class Site:
    ns: str
    name: str
    host: str
    paths: tuple[tuple[str, str, int], ...]  # (path, service, port)


SITES = [Site("prod", "shop", "shop.example.com", (("/", "web-frontend", 80), ("/api", "payments-api", 80))),
         Site("monitoring", "grafana", "grafana.internal.example", (("/", "grafana", 3000),))]
# (name, pods it guards, who may reach them: namespace label, port)
POLICIES = [("allow-from-ingress-nginx", {"app": "web-frontend"}, NS, 8080),
            ("allow-api-from-ingress-nginx", {"app": "payments-api"}, NS, 8080)]


def put_all(plant: Plant) -> None:
    rng = plant.fork("ingress")
    plant.put(f"/registry/configmaps/{NS}/ingress-nginx-controller", {
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": plant.meta("ingress-nginx-controller", NS, rng, labels=dict(INGRESS_LABELS)),
        "data": {"allow-snippet-annotations": "true", "proxy-body-size": "8m", "use-forwarded-headers": "true"}},
        APPLIED)
    plant.put(f"/registry/ingressclasses/{CLASS}", {
        "kind": "IngressClass", "apiVersion": "networking.k8s.io/v1",
        "metadata": plant.meta(CLASS, None, rng, labels=dict(INGRESS_LABELS),
                               annotations={"ingressclass.kubernetes.io/is-default-class": "true"}),
        "spec": {"controller": CONTROLLER}}, APPLIED)
    # with no --publish-service the controller reports the addresses of the nodes it runs on
    ips = sorted({p["status"]["hostIP"] for p in plant.pods if p["metadata"]["namespace"] == NS})
    for site in SITES:
        _site(plant, rng, site, ips)
    _policies(plant, rng)


def _site(plant: Plant, rng: random.Random, site: Site, ips: list[str]) -> None:
    secret = f"{site.name}-tls"
    plant.put(f"/registry/ingress/{site.ns}/{site.name}", {
        "kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
        "metadata": plant.meta(site.name, site.ns, rng, generation=1, annotations={
            "cert-manager.io/cluster-issuer": "letsencrypt-prod",
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m"}),
        "spec": {"tls": [{"hosts": [site.host], "secretName": secret}],
                 "rules": [{"host": site.host, "http": {"paths": [
                     {"path": path, "pathType": "Prefix",
                      "backend": {"service": {"name": service, "port": {"number": port}}}}
                     for path, service, port in site.paths]}}],
                 "ingressClassName": CLASS},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}},
        {"kubectl-client-side-apply": ("metadata", "spec"), "nginx-ingress-controller": ("status",)})
    # the certificate in force: issued at the last renewal before the bait's time
    issued = plant.created.replace(microsecond=0) - timedelta(days=CLUSTER_AGE.days % RENEWED_EVERY_DAYS,
                                                               seconds=rng.randrange(86400))
    cert, key = pki.acme_leaf(plant.seed, f"{site.ns}/{secret}", [site.host], issued)
    plant.token(key.decode().splitlines()[1], f"tls-private-key:{site.ns}/{secret}")  # the key's first line
    plant.put(f"/registry/secrets/{site.ns}/{secret}", {
        "kind": "Secret", "apiVersion": "v1",
        "metadata": plant.meta(secret, site.ns, rng, annotations={
            "cert-manager.io/alt-names": site.host, "cert-manager.io/certificate-name": secret,
            "cert-manager.io/common-name": site.host, "cert-manager.io/ip-sans": "",
            "cert-manager.io/issuer-group": "cert-manager.io", "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-name": "letsencrypt-prod", "cert-manager.io/uri-sans": ""}),
        "data": {"tls.crt": cert, "tls.key": key}, "type": "kubernetes.io/tls"}, {"controller": None})


def _policies(plant: Plant, rng: random.Random) -> None:
    plant.put("/registry/networkpolicies/prod/default-deny-ingress", {
        "kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
        "metadata": plant.meta("default-deny-ingress", "prod", rng, generation=1),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}, APPLIED)
    for name, pods, source, port in POLICIES:
        plant.put(f"/registry/networkpolicies/prod/{name}", {
            "kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
            "metadata": plant.meta(name, "prod", rng, generation=1),
            "spec": {"podSelector": {"matchLabels": pods},
                     "ingress": [{"ports": [{"protocol": "TCP", "port": port}],
                                  "from": [{"namespaceSelector": {
                                      "matchLabels": {"kubernetes.io/metadata.name": source}}}]}],
                     "policyTypes": ["Ingress"]}}, APPLIED)
