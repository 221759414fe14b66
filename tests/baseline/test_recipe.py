"""Recipes: YAML into strict models, artifact sources (paths, file:// and http:// URLs), pinned
digests, reproducibility checks and OCI image layouts."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from teeplane.baseline.build import measure_recipe
from teeplane.baseline.errors import BuildInputError, BuildRefusedError
from teeplane.baseline.example import Kernel, oci_layout, recipe_data, write_build, write_recipe
from teeplane.baseline.measure.tdvf import PageOrder
from teeplane.baseline.measure.tdx import Separator
from teeplane.baseline.oci import layout_manifest_digest
from teeplane.baseline.recipe import ImageRef, OciLayoutImage, Recipe, load_recipe, parse_recipe
from teeplane.baseline.resolve import tdx_layout

SNP = {"tee": "snp", "layout": None, "images": []}


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """A directory with a build's artifacts: firmware, kernel, initrd, initdata, an OCI layout."""
    return write_build(tmp_path)


def refused_input(directory: Path, **overrides: Any) -> BuildInputError:
    with pytest.raises(BuildInputError) as caught:
        measure_recipe(load_recipe(write_recipe(directory, **overrides)))
    return caught.value


def refused(directory: Path, **overrides: Any) -> BuildRefusedError:
    with pytest.raises(BuildRefusedError) as caught:
        measure_recipe(load_recipe(write_recipe(directory, **overrides)))
    return caught.value


def test_a_yaml_recipe_loads_with_paths_relative_to_it(build_dir: Path) -> None:
    recipe = load_recipe(write_recipe(build_dir))
    assert recipe.firmware.source == str(build_dir / "OVMF.fd")
    assert recipe.layout is not None and recipe.layout.memory == 2 << 30
    assert isinstance(recipe.images[0], ImageRef) and isinstance(recipe.images[1], OciLayoutImage)
    assert recipe.images[1].oci_layout.source == str(build_dir / "sidecar")
    layout = tdx_layout(recipe.layout)
    assert (layout.page_order, layout.patch_setup_header, layout.separator) == (
        PageOrder.SINGLE_PASS,
        True,
        Separator.RTMR1,
    )


@pytest.mark.parametrize(
    ("qemu", "order", "patch"),
    [("8.2.2", PageOrder.TWO_PASS, True), ("9.1", PageOrder.SINGLE_PASS, True), ("10.0", PageOrder.SINGLE_PASS, False)],
)
def test_qemu_version_families_and_overrides(qemu: str, order: PageOrder, patch: bool) -> None:
    recipe = parse_recipe(recipe_data(layout={"qemu": qemu, "memory": 4 << 30}))
    assert recipe.layout is not None
    layout = tdx_layout(recipe.layout)
    assert (layout.page_order, layout.patch_setup_header, layout.memory_size) == (order, patch, 4 << 30)
    overridden = parse_recipe(
        recipe_data(layout={"qemu": qemu, "page_order": "two-pass", "patch_setup_header": False, "separator": "rtmr0"})
    )
    assert overridden.layout is not None
    assert tdx_layout(overridden.layout) == type(layout)(PageOrder.TWO_PASS, False, 2 << 30, Separator.RTMR0)


@pytest.mark.parametrize(
    ("overrides", "where", "message"),
    [
        ({"kernal": {"source": "bzImage"}}, "kernal", "Extra inputs are not permitted"),
        ({"tee": "sgx"}, "tee", "'tdx' or 'snp'"),
        ({"firmware": {"source": "OVMF.fd", "sha384": "zz"}}, "firmware.sha384", "hex"),
        ({"firmware": {"source": "OVMF.fd", "sha384": "ab" * 32}}, "firmware.sha384", "48 bytes"),
        ({"firmware": {"source": "ftp://host/OVMF.fd"}}, "firmware.source", "only plain paths"),
        ({"firmware": {"source": ""}}, "firmware.source", "empty"),
        ({"kernel": None}, "recipe", "names a kernel and a layout"),
        ({"layout": {"qemu": "nine"}}, "layout.qemu", "should match pattern"),
        ({"layout": {"qemu": "7.2"}}, "layout.qemu", "before 8.0"),
        ({"layout": {"qemu": "9.1", "memory": "lots"}}, "layout.memory", "not a memory size"),
        ({"layout": {"qemu": "9.1", "page_order": "three-pass"}}, "layout.page_order", "two-pass"),
        ({"layout": {"qemu": "9.1", "patch_setup_header": "yes"}}, "layout.patch_setup_header", "valid boolean"),
        ({"images": [{"ref": "registry.example/app:latest"}]}, "images.0", "not <repository>@sha256"),
        ({"cmdline": "a\0b"}, "cmdline", "NUL"),
        ({"snp": {"vcpus": 1, "vcpu_type": "EPYC-v4"}}, "recipe", "do not apply to a TDX recipe"),
        ({"tee": "snp", "layout": None}, "recipe", "names its snp options"),
        ({**SNP, "snp": {"vcpus": 1, "vcpu_type": "i486"}}, "snp.vcpu_type", "unknown vCPU type 'i486'"),
        ({**SNP, "snp": {"vcpus": 0, "vcpu_type": "EPYC"}}, "snp.vcpus", "greater than 0"),
    ],
)
def test_malformed_recipes_name_the_field(overrides: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(BuildInputError, match=message) as caught:
        parse_recipe(recipe_data(**overrides))
    assert caught.value.code == "recipe.malformed"
    assert caught.value.where is not None and caught.value.where.startswith(where)


def test_unreadable_recipes(tmp_path: Path) -> None:
    with pytest.raises(BuildInputError, match="cannot read the recipe"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("tee: [tdx\n")
    with pytest.raises(BuildInputError, match="is not YAML") as caught:
        load_recipe(tmp_path / "bad.yaml")
    assert caught.value.code == "recipe.malformed"
    (tmp_path / "list.yaml").write_text("- tdx\n")
    with pytest.raises(BuildInputError, match="recipe"):
        load_recipe(tmp_path / "list.yaml")


def test_pinned_digests_must_match(build_dir: Path) -> None:
    kernel = (build_dir / "bzImage").read_bytes()
    sha384, sha256 = hashlib.sha384(kernel).hexdigest(), hashlib.sha256(kernel).hexdigest()
    expected = measure_recipe(load_recipe(write_recipe(build_dir, kernel={"source": "bzImage", "sha384": sha384})))
    kernel_subject = next(a for a in expected.artifacts if a.name == "kernel")
    assert kernel_subject.digest == {"sha384": sha384}
    error = refused(build_dir, kernel={"source": "bzImage", "sha384": "00" * 48})
    assert (error.code, error.where) == ("artifact.digest_mismatch", "kernel.sha384")
    assert sha384 in error.message and error.exit_code == 1
    error = refused(build_dir, initrd={"source": "initrd.img", "sha256": sha256})
    assert (error.code, error.where) == ("artifact.digest_mismatch", "initrd.sha256")


def test_two_inputs_of_an_artifact_must_be_identical(build_dir: Path) -> None:
    rebuild = build_dir / "rebuild"
    rebuild.mkdir()
    (rebuild / "bzImage").write_bytes((build_dir / "bzImage").read_bytes())
    measure_recipe(load_recipe(write_recipe(build_dir, kernel={"source": "bzImage", "rebuild": "rebuild/bzImage"})))
    (rebuild / "bzImage").write_bytes(Kernel(seed=b"another build").build())
    error = refused(build_dir, kernel={"source": "bzImage", "rebuild": "rebuild/bzImage"})
    assert (error.code, error.where) == ("artifact.inputs_differ", "kernel.rebuild")
    assert "not reproducible" in error.message


def test_missing_artifacts_are_unreadable(build_dir: Path) -> None:
    error = refused_input(build_dir, initrd={"source": "nowhere.img"})
    assert (error.code, error.where) == ("artifact.unreadable", "initrd.source")
    assert "nowhere.img" in error.message


def test_file_urls_are_read(build_dir: Path) -> None:
    by_path = measure_recipe(load_recipe(write_recipe(build_dir)))
    url = (build_dir / "bzImage").as_uri()
    by_url = measure_recipe(load_recipe(write_recipe(build_dir, kernel={"source": url})))
    assert by_url.rtmrs == by_path.rtmrs
    assert next(a.uri for a in by_url.artifacts if a.name == "kernel") == url


@pytest.fixture
def http_root(build_dir: Path) -> Iterator[str]:
    """An HTTP server over the build directory."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(build_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_http_urls_are_fetched(build_dir: Path, http_root: str) -> None:
    by_path = measure_recipe(load_recipe(write_recipe(build_dir)))
    remote = {"firmware": {"source": f"{http_root}/OVMF.fd"}, "initrd": {"source": f"{http_root}/initrd.img"}}
    by_http = measure_recipe(load_recipe(write_recipe(build_dir, **remote)))
    assert (by_http.mrtd, by_http.rtmrs) == (by_path.mrtd, by_path.rtmrs)
    error = refused_input(build_dir, initrd={"source": f"{http_root}/missing.img"})
    assert (error.code, error.where) == ("artifact.unreadable", "initrd.source")
    assert "404" in error.message


def test_oci_layouts_give_their_manifest_digest(build_dir: Path) -> None:
    digest = layout_manifest_digest(build_dir / "sidecar")
    assert digest == layout_manifest_digest(build_dir / "sidecar", "latest")
    expected = measure_recipe(load_recipe(write_recipe(build_dir)))
    assert f"image:registry.example/sidecar@{digest}" in [a.name for a in expected.artifacts]
    assert expected.events["rtmr3"][1].description == f"container image registry.example/sidecar@{digest}"
    pinned = {"name": "registry.example/sidecar", "oci_layout": {"source": "sidecar"}, "digest": "sha256:" + "0" * 64}
    error = refused(build_dir, images=[pinned])
    assert (error.code, error.where) == ("artifact.digest_mismatch", "images[0].digest")
    oci_layout(build_dir / "other", content=b"other app")
    differs = {"name": "registry.example/sidecar", "oci_layout": {"source": "sidecar", "rebuild": "other"}}
    error = refused(build_dir, images=[differs])
    assert (error.code, error.where) == ("artifact.inputs_differ", "images[0].oci_layout.rebuild")


def test_malformed_oci_layouts(build_dir: Path) -> None:
    layout = build_dir / "sidecar"
    with pytest.raises(BuildInputError, match="0 manifests tagged 'v2'") as caught:
        layout_manifest_digest(layout, "v2")
    assert caught.value.code == "oci_layout.malformed"
    digest = layout_manifest_digest(layout).split(":")[1]
    (layout / "blobs" / "sha256" / digest).write_bytes(b"{}")
    with pytest.raises(BuildInputError, match="does not have the digest"):
        layout_manifest_digest(layout)
    (layout / "index.json").write_text("[")
    with pytest.raises(BuildInputError, match="is not JSON"):
        layout_manifest_digest(layout)
    (layout / "index.json").write_text('{"manifests": [{"digest": "md5:00"}]}')
    with pytest.raises(BuildInputError, match="not a sha256/sha512 digest"):
        layout_manifest_digest(layout)
    with pytest.raises(BuildInputError, match="cannot be read"):
        layout_manifest_digest(build_dir / "no-layout")
    with pytest.raises(BuildInputError, match="an OCI layout is a local directory"):
        measure_recipe(
            parse_recipe(
                recipe_data(images=[{"name": "r/x", "oci_layout": {"source": "https://example.invalid/x"}}]), build_dir
            )
        )


def test_recipes_are_immutable_models() -> None:
    recipe = parse_recipe(recipe_data())
    assert isinstance(recipe, Recipe)
    with pytest.raises(ValueError, match="frozen"):
        recipe.cmdline = "changed"  # type: ignore[misc]
