"""The deployment manifests in docker/, validated offline: no cluster, no Docker engine, no network.

- The RayService against KubeRay's own CRDs (docker/k8s/schemas/kuberay), and its embedded ``rayClusterConfig``
  against the RayCluster CRD, with ``jsonschema``: unknown fields are rejected as ``kubectl apply`` (strict field
  validation) would, and the ``x-kubernetes-*`` extensions are honoured where they decide validity.
- ``serveConfigV2`` through Ray Serve's own ``ServeDeploySchema``, plus a check for keys Serve would silently drop.
- Every core object (and the Ray pod templates) through ``kubernetes-validate``, strict, at one pinned version.
- ``kustomization.yaml`` against the files present; references between the objects.
- ``compose.yaml`` through Debian's ``docker-compose config``.
- The Serve application itself: built from the manifest's import path and environment, the way Serve builds it,
  and placed on the cluster the manifest describes.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import BaseModel

from visionloop.core.config import load_settings
from visionloop.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
KUBERAY = K8S / "schemas" / "kuberay"
COMPOSE = DOCKER / "compose.yaml"
# The oldest Kubernetes release still in upstream support when this was written; kubernetes-validate ships it.
KUBERNETES_VERSION = "1.33.0"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 2 MB: libyaml reads them in about a second
TEST_TOKEN = "0123456789abcdef0123456789abcdef"  # stands in for the token an operator puts in the Secret

Obj = dict[str, Any]


def documents(path: Path) -> list[Obj]:
    """The non-empty YAML documents of a file."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=LOADER) if doc]


def manifest_files() -> list[Path]:
    """The Kubernetes manifests (not the kustomization, not the vendored CRDs)."""
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def all_objects() -> list[Obj]:
    return [doc for path in manifest_files() for doc in documents(path)]


def the_object(kind: str, name: str | None = None) -> Obj:
    (found,) = [obj for obj in all_objects() if obj["kind"] == kind and name in (None, obj["metadata"]["name"])]
    return found


def rayservice() -> Obj:
    return the_object("RayService")


def ray_groups(cluster: Obj) -> list[Obj]:
    """The head group, then the worker groups, of a RayCluster spec."""
    return [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]


def errors_at(error: jsonschema.ValidationError) -> str:
    return f"{'.'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"


def test_every_yaml_file_under_docker_parses() -> None:
    files = [path for path in sorted(DOCKER.rglob("*.y*ml")) if KUBERAY not in path.parents]
    assert {COMPOSE, K8S / "kustomization.yaml", DOCKER / "prometheus.yml"} <= set(files)
    empty = [path for path in files if not documents(path)]
    assert empty == []


# --- KubeRay CRDs as JSON Schema ---------------------------------------------------------------------------------


def to_json_schema(node: Obj) -> Obj:
    """A CRD's structural OpenAPI v3 schema as JSON Schema with the API server's rules made explicit."""
    out = dict(node)
    if "properties" in node:
        out["properties"] = {name: to_json_schema(sub) for name, sub in node["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            out[key] = to_json_schema(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [to_json_schema(sub) for sub in node[key]]
    return kubernetes_rules(out)


def kubernetes_rules(node: Obj) -> Obj:
    """OpenAPI's ``nullable``; int-or-string; list-type set; and closed objects: kubectl's default strict field
    validation rejects a field a structural schema does not name, unless it preserves unknown fields."""
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-list-type") == "set":
        node["uniqueItems"] = True
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    return node


def unique_list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: Obj
) -> Iterator[jsonschema.ValidationError]:
    """``x-kubernetes-list-type: map``: the API server rejects two items with the same key (defaults applied)."""
    if not validator.is_type(instance, "array"):
        return
    defaults = {key: sub.get("default") for key, sub in schema.get("items", {}).get("properties", {}).items()}
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        key = tuple(item.get(name, defaults.get(name)) for name in keys) if isinstance(item, dict) else (index,)
        if key in seen:
            yield jsonschema.ValidationError(
                f"items {seen[key]} and {index} have the same key {dict(zip(keys, key, strict=True))}"
            )
        seen.setdefault(key, index)


def cel_rules(validator: Any, rules: list[Obj], instance: Any, schema: Obj) -> Iterator[jsonschema.ValidationError]:
    """``x-kubernetes-validations`` are CEL rules, which this check cannot evaluate: it refuses to pass a field it
    cannot check rather than pass it unchecked (none of visionloop's manifests sets one)."""
    listed = "; ".join(rule["rule"] for rule in rules)
    yield jsonschema.ValidationError(f"set a field guarded by CEL rules this offline check cannot evaluate ({listed})")


FORMATS = jsonschema.FormatChecker(formats=())


def is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


FORMATS.checks("int32")(is_int32)
FORMATS.checks("int64")(is_int64)


CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-kubernetes-list-map-keys": unique_list_map_keys, "x-kubernetes-validations": cel_rules},
)


@cache
def crd_schema(filename: str) -> Obj:
    """The ``ray.io/v1`` schema of a vendored CRD, as strict JSON Schema."""
    crd = yaml.load((KUBERAY / filename).read_text(), Loader=LOADER)
    (version,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return to_json_schema(version["schema"]["openAPIV3Schema"])


def crd_errors(schema: Obj, instance: Obj) -> list[str]:
    validator = CrdValidator(schema, format_checker=FORMATS)
    return sorted(errors_at(error) for error in validator.iter_errors(instance))


def rayservice_errors(obj: Obj) -> list[str]:
    return crd_errors(crd_schema("ray.io_rayservices.yaml"), obj)


def raycluster_spec_errors(cluster: Obj) -> list[str]:
    return crd_errors(crd_schema("ray.io_rayclusters.yaml")["properties"]["spec"], cluster)


def test_the_rayservice_matches_the_kuberay_crd() -> None:
    assert rayservice()["apiVersion"] == "ray.io/v1"
    assert rayservice_errors(rayservice()) == []
    print("manifests: the RayService is valid for KubeRay's RayService CRD (ray.io/v1, strict)")


def test_the_embedded_cluster_config_matches_the_raycluster_crd() -> None:
    assert raycluster_spec_errors(rayservice()["spec"]["rayClusterConfig"]) == []


_DELETE = object()


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation that sets a dotted path (list indexes as numbers) of a RayService."""

    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


HEAD = "spec.rayClusterConfig.headGroupSpec"
HEAD_CONTAINER = f"{HEAD}.template.spec.containers.0"
GPU_GROUP = "spec.rayClusterConfig.workerGroupSpecs.1"


def _duplicate_port(obj: Obj) -> None:
    obj["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "serve-again", "containerPort": 8000}
    )


BROKEN_RAYSERVICES: dict[str, tuple[Callable[[Obj], None], str, str]] = {
    "wrong type": (_set(f"{GPU_GROUP}.replicas", "1"), f"{GPU_GROUP}.replicas", "is not of type 'integer'"),
    "unknown field (v1alpha1's serveConfig)": (_set("spec.serveConfig", {}), "spec", "'serveConfig' was unexpected"),
    "unknown field in a pod template": (
        _set(f"{HEAD_CONTAINER}.envfrom", []),
        HEAD_CONTAINER,
        "'envfrom' was unexpected",
    ),
    "missing required field": (
        _set("spec.rayClusterConfig.headGroupSpec", _DELETE),
        "spec.rayClusterConfig",
        "'headGroupSpec' is a required property",
    ),
    "int-or-string quantity": (
        _set(f"{HEAD_CONTAINER}.resources.limits.memory", "8GB"),
        f"{HEAD_CONTAINER}.resources.limits.memory",
        "does not match",
    ),
    "int32 out of range": (_set(f"{GPU_GROUP}.maxReplicas", 2**31), f"{GPU_GROUP}.maxReplicas", "is not a 'int32'"),
    "list-map key twice": (_duplicate_port, f"{HEAD_CONTAINER}.ports", "have the same key"),
    "rayStartParams value not a string": (
        _set(f"{HEAD}.rayStartParams.num-cpus", 0),
        f"{HEAD}.rayStartParams.num-cpus",
        "is not of type 'string'",
    ),
    "CEL-guarded field": (_set("spec.managedBy", "ray.io/kuberay-operator"), "spec.managedBy", "CEL rules"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_RAYSERVICES))
def test_the_crd_check_rejects_a_broken_rayservice(case: str) -> None:
    mutate, path, fragment = BROKEN_RAYSERVICES[case]
    broken = copy.deepcopy(rayservice())
    mutate(broken)
    errors = rayservice_errors(broken)
    assert any(error.startswith(f"{path}: ") and fragment in error for error in errors), errors
    if path.startswith("spec.rayClusterConfig"):  # the same flaw is caught against the RayCluster CRD too
        cluster_path = path.removeprefix("spec.rayClusterConfig").removeprefix(".") or "<root>"
        cluster_errors = raycluster_spec_errors(broken["spec"]["rayClusterConfig"])
        assert any(error.startswith(f"{cluster_path}: ") and fragment in error for error in cluster_errors)


# --- KubeRay's operator-side rules (not in the schema) ----------------------------------------------------------


def dns1035_label(name: str) -> bool:
    return re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None


def test_the_rayservice_passes_kuberays_own_checks() -> None:
    """What KubeRay's operator checks beyond the schema (ValidateRayServiceMetadata, ValidateRayClusterSpec)."""
    service = rayservice()
    name = service["metadata"]["name"]
    assert dns1035_label(name) and len(name) <= 47, "KubeRay: a DNS-1035 label of at most 53 - 6 characters"
    cluster = service["spec"]["rayClusterConfig"]
    workers = cluster["workerGroupSpecs"]
    assert len({group["groupName"] for group in workers}) == len(workers), "worker group names must be unique"
    for group in ray_groups(cluster):
        assert group["template"]["spec"]["containers"], "every group needs a container"
        ray_start_resources = {"num-cpus", "num-gpus", "memory", "resources"} & set(group["rayStartParams"])
        assert not (ray_start_resources and "resources" in group), "KubeRay: resources in one place only"
        assert "labels" not in group["rayStartParams"], "KubeRay: use the group's labels field"
    for group in workers:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]


# --- core objects: kubernetes-validate -------------------------------------------------------------------------


def ray_pod_templates() -> list[Obj]:
    """The Ray groups' pod templates as core PodTemplate objects, so the pinned Kubernetes schema checks them too."""
    cluster = rayservice()["spec"]["rayClusterConfig"]
    return [
        {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": group.get("groupName", "head")},
            "template": group["template"],
        }
        for group in ray_groups(cluster)
    ]


def k8s_errors(obj: Obj) -> str | None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return errors_at(error)
    return None


def test_every_core_object_passes_kubernetes_validate_strict() -> None:
    core = [obj for obj in all_objects() if not obj["apiVersion"].startswith("ray.io/")]
    objects = core + ray_pod_templates()
    failures = {f"{obj['kind']}/{obj['metadata']['name']}": k8s_errors(obj) for obj in objects}
    assert {name: error for name, error in failures.items() if error} == {}
    kinds = sorted({obj["kind"] for obj in core})
    assert {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "StatefulSet"} <= set(kinds)
    print(
        f"manifests: {len(objects)} core objects valid for Kubernetes {KUBERNETES_VERSION} (strict; "
        f"{', '.join(kinds)}, {len(objects) - len(core)} Ray pod templates)"
    )


def _container(obj: Obj) -> Obj:
    container: Obj = obj["spec"]["template"]["spec"]["containers"][0]
    return container


BROKEN_DEPLOYMENTS: dict[str, tuple[Callable[[Obj], None], str]] = {
    "unknown field": (lambda obj: _container(obj).update(imagePullpolicy="Always"), "imagePullpolicy"),
    "wrong type": (lambda obj: obj["spec"].update(replicas="1"), "is not of type 'integer'"),
    "missing required field": (lambda obj: _container(obj).pop("name"), "'name' is a required property"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_DEPLOYMENTS))
def test_kubernetes_validate_rejects_a_broken_deployment(case: str) -> None:
    mutate, fragment = BROKEN_DEPLOYMENTS[case]
    broken = copy.deepcopy(the_object("Deployment", "labelstudio"))
    mutate(broken)
    error = k8s_errors(broken)
    assert error is not None and fragment in error, error


# --- kustomization and references ------------------------------------------------------------------------------


def test_the_kustomization_lists_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    image_names = {image["name"] for image in kustomization["images"]}
    used = {container["image"].split(":")[0] for container in containers_of(all_objects())}
    assert "visionloop" in used and image_names <= used, "every image rewrite must match an image in use"


def containers_of(node: Any) -> Iterator[Obj]:
    """Every container and init container anywhere below ``node`` (inside the RayService too)."""
    if isinstance(node, list):
        for item in node:
            yield from containers_of(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers"):
                yield from value
            else:
                yield from containers_of(value)


REFERENCES = {
    "configMapRef": ("ConfigMap", "name"),
    "configMapKeyRef": ("ConfigMap", "name"),
    "secretRef": ("Secret", "name"),
    "secretKeyRef": ("Secret", "name"),
    "persistentVolumeClaim": ("PersistentVolumeClaim", "claimName"),
}


def references(node: Any) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap, Secret and PVC an object refers to."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in REFERENCES and isinstance(value, dict):
                kind, field = REFERENCES[key]
                yield kind, value[field]
            yield from references(value)


def pod_specs() -> Iterator[tuple[str, Obj, set[str]]]:
    """(where, pod spec, names of volume claim templates) of every pod the manifests define."""
    for obj in all_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            claims = {claim["metadata"]["name"] for claim in obj["spec"].get("volumeClaimTemplates", [])}
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"], claims
    for group in ray_groups(rayservice()["spec"]["rayClusterConfig"]):
        yield f"ray group {group.get('groupName', 'head')}", group["template"]["spec"], set()


def test_every_reference_resolves() -> None:
    defined = {(obj["kind"], obj["metadata"]["name"]) for obj in all_objects()}
    assert set(references(all_objects())) - defined == set()
    for where, spec, claims in pod_specs():
        volumes = {volume["name"] for volume in spec.get("volumes", [])} | claims
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            assert mounts <= volumes, f"{where}/{container['name']} mounts an undefined volume"


def test_every_service_selects_a_pod_with_its_ports() -> None:
    templates = [obj["spec"]["template"] for obj in all_objects() if obj["kind"] in ("Deployment", "StatefulSet")]
    for service in (obj for obj in all_objects() if obj["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        (pod,) = [tpl for tpl in templates if selector <= tpl["metadata"]["labels"].items()]
        ports = {port.get("name") for c in pod["spec"]["containers"] for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert not isinstance(port["targetPort"], str) or port["targetPort"] in ports, service["metadata"]


# --- serveConfigV2: Ray Serve's schema --------------------------------------------------------------------------


def serve_config() -> Obj:
    config: Obj = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    return config


def unknown_keys(model: BaseModel, data: Mapping[str, Any], where: str = "") -> list[str]:
    """Keys of ``data`` that ``model`` has no field for: Serve's schema ignores them, so a misspelt key would be
    dropped without a word."""
    fields = type(model).model_fields
    known = set(fields) | {field.alias for field in fields.values() if field.alias}
    found = [f"{where}{key}" for key in data if key not in known]
    for key, value in data.items():
        if key in fields:
            found += _unknown_below(getattr(model, key), value, f"{where}{key}")
    return found


def _unknown_below(parsed: Any, value: Any, where: str) -> list[str]:
    if isinstance(parsed, BaseModel) and isinstance(value, Mapping):
        return unknown_keys(parsed, value, f"{where}.")
    if isinstance(parsed, list) and isinstance(value, list):
        pairs = enumerate(zip(parsed, value, strict=False))
        return [key for i, (item, raw) in pairs for key in _unknown_below(item, raw, f"{where}.{i}")]
    return []


def serve_problems(config: Obj) -> list[str]:
    from ray.serve.schema import ServeDeploySchema

    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValueError as error:  # pydantic's ValidationError
        return [str(error)]
    return [f"unknown key {key}" for key in unknown_keys(schema, config)]


def test_serve_config_matches_ray_serves_schema() -> None:
    assert serve_problems(serve_config()) == []
    (app,) = serve_config()["applications"]
    assert app["import_path"] == "visionloop.cli.deploy:app"
    print("manifests: serveConfigV2 is valid for Ray Serve's ServeDeploySchema, with no key Serve would ignore")


BROKEN_SERVE_CONFIGS: dict[str, tuple[Callable[[Obj], None], str]] = {
    "import path without module": (lambda c: c["applications"][0].update(import_path="app"), "invalid import path"),
    "port not a number": (lambda c: c["http_options"].update(port="http"), "http_options.port"),
    "misspelt key Serve would drop": (
        lambda c: c["applications"][0].update(route_prefx="/"),
        "unknown key applications.0.route_prefx",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SERVE_CONFIGS))
def test_the_serve_check_rejects_a_broken_config(case: str) -> None:
    mutate, fragment = BROKEN_SERVE_CONFIGS[case]
    broken = serve_config()
    mutate(broken)
    assert any(fragment in problem for problem in serve_problems(broken))


def test_serve_listens_where_the_head_publishes_it() -> None:
    (head,) = rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in head["ports"]}
    assert serve_config()["http_options"]["port"] == ports["serve"]
    assert serve_config()["http_options"]["host"] == "0.0.0.0"


# --- the Serve application, built from the manifest ------------------------------------------------------------


def build_like_serve(app: Obj) -> Obj:
    """The steps Serve's controller runs in its build task (ray.serve._private.application_state
    .build_serve_application): import the import path, call it with the args if it is a builder, build the app."""
    from ray._common.utils import import_attr
    from ray.serve import Application
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    application = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), app.get("args", {}))
    assert isinstance(application, Application), type(application)
    built = build_app(application, name=app["name"])
    built.validate_single_fastapi_ingress()
    deployments = {d.name: {"replicas": d.num_replicas, "options": d.ray_actor_options} for d in built.deployments}
    return {"type": type(application).__name__, "ingress": built.ingress_deployment_name, "deployments": deployments}


def pod_environment(secret_token: str) -> dict[str, str]:
    """What every Ray pod's envFrom gives visionloop: the ConfigMap, then the Secret (token filled in)."""
    config = the_object("ConfigMap", "visionloop-config")["data"]
    secret = {**the_object("Secret", "visionloop-secrets")["stringData"], "VISIONLOOP_API__TOKEN": secret_token}
    return {**config, **secret}


def test_every_ray_pod_gets_the_same_settings_and_state_volume() -> None:
    """Serve may build the app on any node and fixes the settings then: all Ray containers must agree."""
    config = the_object("ConfigMap", "visionloop-config")["data"]
    env_from = [{"configMapRef": {"name": "visionloop-config"}}, {"secretRef": {"name": "visionloop-secrets"}}]
    ray_containers = list(containers_of(rayservice()))
    assert len(ray_containers) == 4
    for container in ray_containers:
        assert container["envFrom"] == env_from and "env" not in container, container["name"]
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert config["VISIONLOOP_PATHS__VAR_DIR"] in mounts, container["name"]


def test_the_example_secret_is_refused_by_the_settings() -> None:
    with pytest.raises(ConfigError, match="VISIONLOOP_API__TOKEN"):
        load_settings(
            environ=pod_environment(the_object("Secret", "visionloop-secrets")["stringData"]["VISIONLOOP_API__TOKEN"])
        )


@pytest.fixture(scope="module")
def built_app(tmp_path_factory: pytest.TempPathFactory, model_registry_template: Path) -> Obj:
    """The app Serve builds from serveConfigV2 with the pods' environment (and the app's runtime_env) and nothing
    else of ours. The state directory is a copy of the test champion's registry (in the pod, models-init makes it)."""
    var_dir = tmp_path_factory.mktemp("deploy-var")
    for part in ("models", "ultralytics"):
        shutil.copytree(model_registry_template / part, var_dir / part)
    (app,) = serve_config()["applications"]
    env = {**pod_environment(TEST_TOKEN), **app.get("runtime_env", {}).get("env_vars", {})}
    env["VISIONLOOP_PATHS__VAR_DIR"] = str(var_dir)
    module = app["import_path"].partition(":")[0]
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith(("VISIONLOOP_", "RAY_"))]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        sys.modules.pop(module, None)  # it reads the settings on import: import it afresh, as Serve's task does
        try:
            return build_like_serve(app)
        finally:
            sys.modules.pop(module, None)


def test_the_manifests_import_path_builds_the_serve_app(built_app: Obj) -> None:
    config = the_object("ConfigMap", "visionloop-config")["data"]
    assert built_app["type"] == "Application" and built_app["ingress"] == "Router"
    deployments = built_app["deployments"]
    # The whole product: the Workers deployment owns the background workers (labeling, loop, drift, cameras...),
    # so the RayService runs what `visionloop up` runs.
    assert set(deployments) == {"Router", "ChampionDetector", "ShadowDetector", "Workers"}
    assert deployments["Workers"]["replicas"] == 1 and deployments["Workers"]["options"]["num_cpus"] == 0
    champion = deployments["ChampionDetector"]
    assert champion["replicas"] == int(config["VISIONLOOP_SERVING__REPLICAS"])
    assert champion["options"]["num_gpus"] == float(config["VISIONLOOP_SERVING__NUM_GPUS"]) > 0


def cpu_quantity(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def ray_nodes(cluster: Obj) -> list[dict[str, float]]:
    """The CPUs and GPUs each Ray node offers: rayStartParams first, else what KubeRay reads from the pod's limits."""
    nodes = []
    for group in ray_groups(cluster):
        params = group["rayStartParams"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        cpu = cpu_quantity(params.get("num-cpus", limits.get("cpu", 0)))
        gpu = float(params.get("num-gpus", limits.get("nvidia.com/gpu", 0)))
        nodes += [{"CPU": cpu, "GPU": gpu} for _ in range(group.get("replicas", 1))]
    return nodes


def unplaced_replicas(deployments: Obj, nodes: list[dict[str, float]]) -> list[str]:
    """Replicas that find no node with their CPUs and GPUs free (first fit, largest first), as Ray would leave
    them pending: one pending replica keeps the Serve app, and so the RayService, from ever becoming ready."""
    free = [dict(node) for node in nodes]
    wants = [
        (name, float(d["options"].get("num_cpus", 1)), float(d["options"].get("num_gpus", 0)))
        for name, d in deployments.items()
        for _ in range(d["replicas"])
    ]
    unplaced = []
    for name, cpu, gpu in sorted(wants, key=lambda want: (want[2], want[1]), reverse=True):
        node = next((n for n in free if n["CPU"] + 1e-9 >= cpu and n["GPU"] + 1e-9 >= gpu), None)
        if node is None:
            unplaced.append(name)
        else:
            node["CPU"] -= cpu
            node["GPU"] -= gpu
    return unplaced


def test_the_cluster_has_room_for_every_replica(built_app: Obj) -> None:
    cluster = rayservice()["spec"]["rayClusterConfig"]
    assert unplaced_replicas(built_app["deployments"], ray_nodes(cluster)) == []
    replicas = sum(deployment["replicas"] for deployment in built_app["deployments"].values())
    print(f"manifests: the Serve app builds; its {replicas} replicas fit the {len(ray_nodes(cluster))} Ray nodes")
    without_gpu_group = copy.deepcopy(cluster)
    without_gpu_group["workerGroupSpecs"][1]["replicas"] = 0
    assert "ChampionDetector" in unplaced_replicas(built_app["deployments"], ray_nodes(without_gpu_group))


# --- Docker Compose ---------------------------------------------------------------------------------------------

# Top-level `name` came to the Compose spec after docker-compose 1.29 (Debian 12's): the test checks it here and
# hands docker-compose the rest. The pattern is the Compose spec's for a project name.
COMPOSE_NAME = re.compile(r"^name: (.*)\n", re.MULTILINE)


def docker_compose(text: str, tmp_path: Path, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is missing: install the Debian package 'docker-compose' (make test does)")
    file = tmp_path / "compose.yaml"
    file.write_text(COMPOSE_NAME.sub("", text, count=1))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    if token is not None:
        env["VISIONLOOP_API__TOKEN"] = token
    # --project-directory: relative paths resolve against docker/, as for the real file
    command = [binary, "-f", str(file), "--project-directory", str(DOCKER), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_compose_file_is_valid(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    match = COMPOSE_NAME.search(text)
    assert match is not None and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", match.group(1)), "Compose spec project name"
    result = docker_compose(text, tmp_path, TEST_TOKEN, "--profile", "cpu", "--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"redis", "visionloop", "visionloop-gpu", "labelstudio", "prometheus", "grafana"}
    for name, service in services.items():
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file(), name
        binds = [volume.split(":")[0] for volume in service.get("volumes", []) if volume.startswith("/")]
        assert all(Path(source).exists() for source in binds), (name, binds)
    print(f"manifests: compose.yaml valid for docker-compose config ({len(services)} services)")


def test_compose_refuses_to_run_without_a_token(tmp_path: Path) -> None:
    result = docker_compose(COMPOSE.read_text(), tmp_path, None, "config", "-q")
    assert result.returncode != 0 and "VISIONLOOP_API__TOKEN" in result.stderr


def test_compose_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    broken = COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restart_policy: always\n", 1)
    result = docker_compose(broken, tmp_path, TEST_TOKEN, "config", "-q")
    assert result.returncode != 0 and "restart_policy" in result.stderr
