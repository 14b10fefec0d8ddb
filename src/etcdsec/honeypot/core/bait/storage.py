"""Storage as a kubeadm cluster with Rancher's local-path provisioner keeps it: the default
StorageClass, the provisioner's ConfigMap, and the claims of the stateful apps (prometheus' from its
StatefulSet's claim template, grafana's: workloads.py says which), each bound to the
PersistentVolume provisioned for it: a hostPath on the node its pod runs on
(/registry/persistentvolumes/, /registry/persistentvolumeclaims/). local-path is no CSI driver, so
there are no VolumeAttachments and the CSINodes list no driver."""

from __future__ import annotations

import json
import random

from etcdsec.honeypot.core.bait import workloads
from etcdsec.honeypot.core.bait.plant import Plant

PROVISIONER, CLASS = "rancher.io/local-path", "local-path"
ROOT = "/opt/local-path-provisioner"


def put_all(plant: Plant) -> None:
    rng = plant.fork("storage")
    plant.put(f"/registry/storageclasses/{CLASS}", {
        "kind": "StorageClass", "apiVersion": "storage.k8s.io/v1",
        "metadata": plant.meta(CLASS, None, rng, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"})
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [ROOT]}]}
    plant.put("/registry/configmaps/local-path-storage/local-path-config", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": plant.meta("local-path-config", "local-path-storage", rng),
        "data": {"config.json": json.dumps(config, indent=8),
                 "setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n",
                 "teardown": "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n"}}, {"kubectl-client-side-apply": None})
    for w, claim, pod_name in workloads.claims():
        pod = next(p for p in plant.pods if p["metadata"]["namespace"] == w.ns
                   and p["metadata"]["name"].startswith(pod_name))
        _bound(plant, rng, w, claim, pod["spec"]["nodeName"])


def _bound(plant: Plant, rng: random.Random, w: workloads.Workload, claim: str, node: str) -> None:
    assert w.disk is not None
    uid = plant.uid(rng)
    volume = f"pvc-{uid}"
    capacity, modes = {"storage": w.disk.size}, ["ReadWriteOnce"]
    plant.put(f"/registry/persistentvolumeclaims/{w.ns}/{claim}", {
        "kind": "PersistentVolumeClaim", "apiVersion": "v1",
        "metadata": plant.meta(claim, w.ns, rng, uid=uid, labels=dict(w.labels), annotations={
            "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER, "volume.kubernetes.io/selected-node": node},
            finalizers=["kubernetes.io/pvc-protection"]),
        "spec": {"accessModes": modes, "resources": {"requests": capacity}, "volumeName": volume,
                 "storageClassName": CLASS, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "accessModes": modes, "capacity": capacity}})
    affinity = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    # the binder's claimRef carries the claim's resourceVersion when it bound it
    claim_ref = {"kind": "PersistentVolumeClaim", "namespace": w.ns, "name": claim, "uid": uid,
                 "apiVersion": "v1", "resourceVersion": str(rng.randint(2000, 90000))}
    plant.put(f"/registry/persistentvolumes/{volume}", {
        "kind": "PersistentVolume", "apiVersion": "v1",
        "metadata": plant.meta(volume, None, rng, annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER},
                               finalizers=["kubernetes.io/pv-protection"]),
        "spec": {"capacity": capacity,
                 "hostPath": {"path": f"{ROOT}/{volume}_{w.ns}_{claim}", "type": "DirectoryOrCreate"},
                 "accessModes": modes, "claimRef": claim_ref, "persistentVolumeReclaimPolicy": "Delete",
                 "storageClassName": CLASS, "volumeMode": "Filesystem", "nodeAffinity": affinity},
        "status": {"phase": "Bound"}})
