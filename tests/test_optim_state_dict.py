"""``state_dict`` / ``load_state_dict`` and ``fusedoptim.save`` / ``fusedoptim.load``.

* The layout is PyTorch's, key for key: the test builds the same optimizer in both libraries and
  compares the structure of their state dicts (PyTorch's implementation-selection keys
  ``foreach``, ``fused``, ``capturable`` and ``differentiable`` excepted: they choose among
  PyTorch's kernels and have no meaning here).
* A run that saves mid-way, reloads into a fresh optimizer (and fresh parameter arrays) and
  continues is bitwise the same as one that never stopped.
* The file format is a zip of ``.npy`` members plus JSON, never pickle, written atomically.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np
import pytest

from fusedoptim import optim, serialization
from fusedoptim.serialization import load, save

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]
# Options that switch on every kind of state each optimizer has.
FULL_STATE: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "RMSprop": {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01},
    "Adadelta": {"lr": 0.9, "weight_decay": 0.01},
    "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01},
    "AdamW": {"lr": 0.01, "amsgrad": True},
}
TORCH_ONLY_KEYS = {"foreach", "fused", "capturable", "differentiable"}
SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _params(dtype: Any = np.float64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]


def _grads(step: int, dtype: Any = np.float64) -> list[np.ndarray | None]:
    rng = np.random.default_rng(1000 + step)
    grads: list[np.ndarray | None] = [
        np.asarray(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES
    ]
    if step % 4 == 1:
        grads[1] = None  # a parameter that sometimes gets no gradient
    return grads


def _make(name: str, params: list[np.ndarray], **overrides: Any) -> optim.Optimizer:
    options = {**FULL_STATE[name], **overrides}
    lr = options["lr"]
    return getattr(optim, name)(
        [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}], **options
    )


def _structure(value: Any) -> Any:
    """The shape of a state dict: keys and types, arrays/tensors reduced to their shape."""
    if isinstance(value, dict):
        return {key: _structure(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_structure(item) for item in value)
    if hasattr(value, "shape"):
        return ("array", tuple(value.shape))
    return value


# --------------------------------------------------------------------------------------------
# Layout against PyTorch.


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_layout_matches_torch(name: str, named: bool) -> None:
    torch = pytest.importorskip("torch")
    params = _params()
    torch_params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    options = FULL_STATE[name]

    def groups(items: list[Any]) -> list[dict[str, Any]]:
        if named:
            items = [(f"layer{i}.weight", item) for i, item in enumerate(items)]
        return [{"params": items[:2]}, {"params": items[2:], "lr": options["lr"] / 2}]

    ours = getattr(optim, name)(groups(params), **options)
    theirs = getattr(torch.optim, name)(groups(torch_params), foreach=False, **options)
    for step in range(3):
        grads = _grads(step)
        ours.step(grads)
        for param, grad in zip(torch_params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad)
        theirs.step()

    ours_dict, torch_dict = ours.state_dict(), theirs.state_dict()
    assert list(ours_dict) == list(torch_dict) == ["state", "param_groups"]
    # Same parameter ids with state, same keys in the same order, same shapes.
    assert list(ours_dict["state"]) == list(torch_dict["state"])
    for index, torch_state in torch_dict["state"].items():
        ours_state = ours_dict["state"][index]
        assert list(ours_state) == list(torch_state), f"state keys of parameter {index}"
        for key, value in torch_state.items():
            assert ours_state[key].shape == tuple(value.shape), (index, key)
            if key == "step":
                assert int(ours_state[key]) == int(value.item())
    # Group entries: PyTorch's keys in PyTorch's order, values equal.
    for ours_group, torch_group in zip(ours_dict["param_groups"], torch_dict["param_groups"]):
        expected_keys = [key for key in torch_group if key not in TORCH_ONLY_KEYS]
        assert list(ours_group) == expected_keys
        for key in expected_keys:
            assert ours_group[key] == torch_group[key], key
            assert type(ours_group[key]) is type(torch_group[key]), key


@pytest.mark.parametrize(("name", "options"), [("SGD", {}), ("Adagrad", {}), ("Adam", {})])
def test_state_before_any_step_matches_torch(name: str, options: dict[str, Any]) -> None:
    """AdaGrad's state exists from construction (step 0); the others have none yet; SGD without
    momentum never has any."""
    torch = pytest.importorskip("torch")
    params = _params()
    ours = getattr(optim, name)(params, **options)
    theirs = getattr(torch.optim, name)(
        [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params], **options
    )
    assert _structure(ours.state_dict()["state"]) == {
        index: {key: ("array", tuple(value.shape)) for key, value in state.items()}
        for index, state in theirs.state_dict()["state"].items()
    }
    if name == "SGD":
        ours.step(_grads(0))
        assert ours.state_dict()["state"] == {}
        assert len(ours.state) == 0


def test_loads_a_state_dict_converted_from_torch() -> None:
    """A torch.optim state dict with its tensors turned into arrays loads, and stepping on
    continues as PyTorch would."""
    torch = pytest.importorskip("torch")
    params = _params()
    torch_params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    theirs = torch.optim.Adam(torch_params, lr=0.01, amsgrad=True, foreach=False)
    for step in range(4):
        for param, grad in zip(torch_params, _grads(step)):
            param.grad = None if grad is None else torch.from_numpy(grad)
        theirs.step()
    converted = theirs.state_dict()
    converted["state"] = {
        index: {key: value.numpy().copy() for key, value in state.items()}
        for index, state in converted["state"].items()
    }
    ours_params = [p.detach().numpy().copy() for p in torch_params]
    ours = optim.Adam(ours_params, lr=0.5)
    ours.load_state_dict(converted)
    assert ours.param_groups[0]["lr"] == 0.01 and ours.param_groups[0]["amsgrad"] is True
    assert "foreach" not in ours.param_groups[0]
    for step in range(4, 8):
        grads = _grads(step)
        ours.step(grads)
        for param, grad in zip(torch_params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad)
        theirs.step()
    for ours_param, torch_param in zip(ours_params, torch_params):
        np.testing.assert_allclose(ours_param, torch_param.detach().numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Round trips and bitwise continuation.


@pytest.mark.parametrize("through_file", [False, True], ids=["state_dict", "save-load"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_resume_mid_run_is_bitwise_identical(
    name: str, dtype: Any, through_file: bool, tmp_path: Any
) -> None:
    total, stop = 12, 5
    straight_params = _params(dtype)
    straight = _make(name, straight_params)
    for step in range(total):
        straight.step(_grads(step, dtype))

    first_params = _params(dtype)
    first = _make(name, first_params)
    for step in range(stop):
        first.step(_grads(step, dtype))
    first.param_groups[1]["lr"] = first.param_groups[1]["lr"]  # unchanged, still restored
    state = first.state_dict()
    if through_file:
        save(state, tmp_path / "optimizer.npz")
        state = load(tmp_path / "optimizer.npz")
    # A new process would have fresh arrays holding the saved parameter values.
    resumed_params = [param.copy() for param in first_params]
    del first
    resumed = _make(name, resumed_params, lr=123.0)  # hyperparameters come from the state
    resumed.load_state_dict(state)
    for step in range(stop, total):
        resumed.step(_grads(step, dtype))

    for index, (a, b) in enumerate(zip(straight_params, resumed_params)):
        assert a.tobytes() == b.tobytes(), f"parameter {index}"
        ours, theirs = straight.state[a], resumed.state[b]
        assert list(ours) == list(theirs)
        for key in ours:
            assert np.asarray(ours[key]).tobytes() == np.asarray(theirs[key]).tobytes(), key
    assert straight.state_dict()["param_groups"] == resumed.state_dict()["param_groups"]


def test_state_dict_is_a_snapshot_and_load_copies() -> None:
    params = _params()
    opt = _make("Adam", params)
    opt.step(_grads(0))
    state = opt.state_dict()
    saved = state["state"][0]["exp_avg"].copy()
    saved_step = int(state["state"][0]["step"])
    opt.step(_grads(1))
    assert np.array_equal(state["state"][0]["exp_avg"], saved)
    assert int(state["state"][0]["step"]) == saved_step

    other_params = _params()
    other = _make("Adam", other_params)
    other.load_state_dict(state)
    state["state"][0]["exp_avg"][...] = 99.0  # the caller's arrays are not aliased
    state["param_groups"][0]["betas"] = (0.1, 0.2)
    assert np.array_equal(other.state[other_params[0]]["exp_avg"], saved)
    assert other.param_groups[0]["betas"] == (0.9, 0.999)


def test_load_casts_state_to_the_parameter_dtype() -> None:
    state = _make("RMSprop", _params(np.float64))
    state.step(_grads(0))
    params32 = _params(np.float32)
    opt = _make("RMSprop", params32)
    opt.load_state_dict(state.state_dict())
    for param in params32:
        for key, value in opt.state[param].items():
            if key != "step":
                assert value.dtype == np.float32 and value.flags.c_contiguous
    opt.step(_grads(1, np.float32))


def test_state_step_is_live_and_loaded_step_counts_on() -> None:
    params = _params()
    opt = _make("Adam", params)
    opt.step(_grads(0))
    step_view = opt.state[params[0]]["step"]
    assert int(step_view) == 1
    opt.step(_grads(1))
    assert int(opt.state[params[0]]["step"]) == 2 and int(step_view) == 2

    other_params = _params()
    other = _make("Adam", other_params)
    other.load_state_dict(opt.state_dict())
    other.step(_grads(2))
    assert int(other.state[other_params[0]]["step"]) == 3


def test_adamw_keeps_decoupled_weight_decay_when_loading_adam_state() -> None:
    """As torch.optim.AdamW: loading (an Adam) state never turns the decay into L2."""
    adam = optim.Adam(_params(), lr=0.01)
    adam.step(_grads(0))
    adamw = optim.AdamW(_params(), lr=0.01)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


def test_sgd_loaded_momentum_buffer_is_not_a_first_step() -> None:
    """SGD keeps no step count; a loaded momentum buffer must be used, not overwritten."""
    params = [np.zeros(2)]
    opt = optim.SGD(params, lr=1.0, momentum=0.5)
    opt.load_state_dict({"state": {0: {"momentum_buffer": np.array([2.0, 4.0])}},
                         "param_groups": opt.state_dict()["param_groups"]})  # fmt: skip
    opt.step([np.array([1.0, 1.0])])
    # buffer = 0.5 * [2, 4] + [1, 1] = [2, 3]; the parameter moves by -lr * buffer.
    assert np.array_equal(opt.state[params[0]]["momentum_buffer"], [2.0, 3.0])
    assert np.array_equal(params[0], [-2.0, -3.0])


# --------------------------------------------------------------------------------------------
# The file format.


def test_file_is_npz_with_json_metadata_and_no_pickle(tmp_path: Any) -> None:
    params = _params()
    opt = _make("Adam", params)
    opt.step(_grads(0))
    path = tmp_path / "adam.npz"
    save(opt.state_dict(), path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        metadata = json.loads(archive.read("metadata.json"))  # standard JSON
    assert metadata["format"] == "fusedoptim.state_dict"
    assert all(name.endswith(".npy") for name in names if name != "metadata.json")
    with np.load(path, allow_pickle=False) as npz:  # numpy reads the arrays by name
        assert np.array_equal(npz["state.0.exp_avg"], opt.state[params[0]]["exp_avg"])
        assert npz["state.0.step"].dtype == np.int64


def test_round_trip_of_odd_structures(tmp_path: Any) -> None:
    value = {
        "ints": {0: "zero", 5: [1, 2.5, None, True]},
        "tuple": (1.0, (2, "x")),
        "floats": [float("nan"), float("inf"), -float("inf"), 1e-300],
        "__dunder": {"__array__": "not an array"},
        "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True)],
        "arrays": [np.arange(6, dtype=np.int32).reshape(2, 3), np.zeros((0, 4)), np.float64(2)],
        "empty": {},
    }
    save(value, tmp_path / "odd.npz")
    loaded = load(tmp_path / "odd.npz")
    assert loaded["ints"] == value["ints"]
    assert loaded["tuple"] == value["tuple"] and isinstance(loaded["tuple"][1], tuple)
    assert np.isnan(loaded["floats"][0]) and loaded["floats"][1:] == value["floats"][1:]
    assert loaded["__dunder"] == value["__dunder"] and loaded["empty"] == {}
    assert [type(x) for x in loaded["scalars"]] == [np.float32, np.int64, np.bool_]
    assert loaded["scalars"] == value["scalars"]
    first = loaded["arrays"][0]
    assert first.dtype == np.int32 and np.array_equal(first, value["arrays"][0])
    assert loaded["arrays"][1].shape == (0, 4)


@pytest.mark.parametrize(
    "bad",
    [{"x": np.array([object()], dtype=object)}, {"x": {1, 2}}, {"x": object()}],
    ids=["object-array", "set", "object"],
)
def test_save_refuses_what_would_need_pickle(bad: Any, tmp_path: Any) -> None:
    path = tmp_path / "state.npz"
    save({"old": 1}, path)
    with pytest.raises(TypeError, match="pickle"):
        save(bad, path)
    assert load(path) == {"old": 1}
    assert os.listdir(tmp_path) == ["state.npz"]


def test_crash_mid_write_leaves_the_old_file_intact(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "optimizer.npz"
    params = _params()
    opt = _make("Adam", params)
    opt.step(_grads(0))
    save(opt.state_dict(), path)
    before = path.read_bytes()
    opt.step(_grads(1))

    written = []
    real_write_array = np.lib.format.write_array

    def crash_after_first(*args: Any, **kwargs: Any) -> None:
        if written:
            raise OSError("disk full (simulated)")
        written.append(True)
        real_write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", crash_after_first)
    with pytest.raises(OSError, match="simulated"):
        save(opt.state_dict(), path)
    assert written  # the crash really happened mid-write, after an array went out
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["optimizer.npz"]  # no temporary file left behind
    monkeypatch.undo()
    restored = _make("Adam", _params())
    restored.load_state_dict(load(path))  # the old file still loads


def test_load_refuses_files_that_are_not_state_dicts(tmp_path: Any) -> None:
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a file written by fusedoptim.save"):
        load(not_zip)
    plain_npz = tmp_path / "plain.npz"
    np.savez(plain_npz, a=np.zeros(2))
    with pytest.raises(ValueError, match=r"no metadata\.json"):
        load(plain_npz)
    # An archive whose array member is a pickle: read with allow_pickle=False, so refused.
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{}], dtype=object), allow_pickle=True)
        archive.writestr(
            "metadata.json",
            json.dumps({"format": serialization._FORMAT, "version": 1, "data": {"x": {
                "__array__": "x.npy"}}}),
        )  # fmt: skip
    with pytest.raises(ValueError, match="allow_pickle"):
        load(pickled)


def test_round_trip_of_a_longdouble_hyperparameter(tmp_path: Any) -> None:
    """The optimizers take NumPy float scalars, longdouble too, which no Python number holds:
    saved as a 0-d array member and read back as the same scalar (it used to recurse forever)."""
    opt = optim.Adam([np.zeros(3)], lr=np.longdouble(1e-3) / 3)
    opt.step([np.ones(3)])
    save(opt.state_dict(), tmp_path / "state.npz")
    lr = load(tmp_path / "state.npz")["param_groups"][0]["lr"]
    assert type(lr) is np.longdouble and lr == np.longdouble(1e-3) / 3
    opt.load_state_dict(load(tmp_path / "state.npz"))


def _damaged_copies(path: Any, tmp_path: Any) -> dict[str, Any]:
    """Copies of a saved file, each damaged in one way."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = {item.filename: item for item in archive.infolist()}
        metadata = json.loads(archive.read("metadata.json"))

    def flipped(member: str) -> bytes:
        item = info[member]  # flip a byte of the member's data: its CRC-32 no longer matches
        start = item.header_offset + 30 + len(item.filename.encode()) + len(item.extra)
        at = start + item.compress_size // 2
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]

    def rewritten(new_data: Any, drop: bool = False) -> bytes:
        replaced = {key: value for key, value in metadata.items() if key != "data"}
        if not drop:
            replaced["data"] = new_data
        target = tmp_path / "rewritten.npz"
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as archive:
            for name in source.namelist():
                if name != "metadata.json":
                    archive.writestr(name, source.read(name))
            archive.writestr("metadata.json", json.dumps(replaced))
        return target.read_bytes()

    array_member = next(name for name in info if name.endswith(".npy"))
    return {
        "array-crc": flipped(array_member),
        "metadata-crc": flipped("metadata.json"),
        "no-data": rewritten(None, drop=True),
        "bad-tuple": rewritten({"__tuple__": 5}),
        "bad-dict": rewritten({"__dict__": [[{"a": 1}, 2]]}),
        "bad-scalar": rewritten({"__scalar__": ["zz", 1]}),
    }


@pytest.mark.parametrize(
    "damage", ["array-crc", "metadata-crc", "no-data", "bad-tuple", "bad-dict", "bad-scalar"]
)
def test_load_refuses_a_damaged_file_with_value_error(damage: str, tmp_path: Any) -> None:
    """load() promises ValueError for a damaged file: a flipped byte (CRC-32), metadata
    without its data, or tags whose content has the wrong shape."""
    params = _params()
    opt = _make("Adam", params)
    opt.step(_grads(0))
    path = tmp_path / "adam.npz"
    save(opt.state_dict(), path)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(_damaged_copies(path, tmp_path)[damage])
    with pytest.raises(ValueError, match="is damaged"):
        load(damaged)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_file_keeps_a_normal_mode(tmp_path: Any) -> None:
    """The temporary file is private while written; the checkpoint gets the replaced file's
    mode, or 0o644 for a new one."""
    path = tmp_path / "state.npz"
    save({"a": np.zeros(1)}, path)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    save({"a": np.ones(1)}, path)
    assert path.stat().st_mode & 0o777 == 0o640


# Group keys that older PyTorch versions did not save, with the values torch's __setstate__ gives
# them when it loads such a checkpoint (AdamW then forces decoupled weight decay on).
LEGACY_KEYS = {
    "SGD": {"nesterov": False, "maximize": False},
    "Adagrad": {"maximize": False},
    "RMSprop": {"momentum": 0, "centered": False, "maximize": False},
    "Adadelta": {"maximize": False},
    "Adam": {"amsgrad": False, "maximize": False, "decoupled_weight_decay": False},
    "AdamW": {"amsgrad": False, "maximize": False, "decoupled_weight_decay": True},
}


@pytest.mark.parametrize("name", NAMES)
def test_loads_checkpoints_of_older_torch_without_newer_group_keys(name: str) -> None:
    source = getattr(optim, name)(_params(), lr=0.01)
    source.step(_grads(2))
    saved = source.state_dict()
    for key in LEGACY_KEYS[name]:
        del saved["param_groups"][0][key]
    target = getattr(optim, name)(_params(), lr=0.5)
    target.load_state_dict(saved)
    group = target.param_groups[0]
    assert {key: group[key] for key in LEGACY_KEYS[name]} == LEGACY_KEYS[name]
    assert group["lr"] == 0.01


def test_loaded_group_keys_match_what_torch_fills_in() -> None:
    torch = pytest.importorskip("torch")
    for name, keys in LEGACY_KEYS.items():
        param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        source = getattr(torch.optim, name)([param], lr=0.01)
        saved = source.state_dict()
        for key in keys:
            del saved["param_groups"][0][key]
        target = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(3))], lr=0.5)
        target.load_state_dict(saved)
        assert {key: target.param_groups[0][key] for key in keys} == keys, name


def test_sgd_loads_a_momentum_buffer_saved_as_none() -> None:
    """Older PyTorch saved ``{'momentum_buffer': None}`` for SGD without momentum."""
    w = np.ones(3)
    opt = optim.SGD([w], lr=0.1)
    opt.load_state_dict(
        {
            "state": {0: {"momentum_buffer": None}},
            "param_groups": [dict(opt.state_dict()["param_groups"][0])],
        }
    )
    assert dict(opt.state[w]) == {}
    opt.step([np.ones(3)])
    np.testing.assert_array_equal(w, np.full(3, 0.9))


@pytest.mark.parametrize(
    "step",
    [2**63, 10**20, 1e20, 2**62 + 5, -1, 2.5, np.uint64(2**63)],
    ids=["2**63", "10**20", "1e20", "2**62+5", "-1", "2.5", "uint64-2**63"],
)
def test_loaded_step_out_of_range_is_refused_with_its_value(step: Any) -> None:
    w = np.ones(2)
    opt = optim.Adam([w])
    opt.step([np.ones(2)])
    saved = opt.state_dict()
    saved["state"][0]["step"] = step
    target = optim.Adam([np.ones(2)])
    with pytest.raises(
        ValueError, match="must be a non-negative integer of at most 2\\*\\*62, got"
    ):
        target.load_state_dict(saved)
    assert len(target.state) == 0


def test_loaded_large_step_is_exact() -> None:
    """An int64 count is not rounded through a float (2**62 - 1 is not a float64)."""
    opt = optim.Adam([np.ones(2)])
    opt.step([np.ones(2)])
    saved = opt.state_dict()
    saved["state"][0]["step"] = np.int64(2**62 - 1)
    target = optim.Adam([np.ones(2)])
    target.load_state_dict(saved)
    assert int(target.state_dict()["state"][0]["step"]) == 2**62 - 1


def test_state_assigned_to_itself_or_merged_keeps_it() -> None:
    w = np.ones(3)
    opt = optim.Adam([w], lr=0.1)
    for _ in range(2):
        opt.step([np.ones(3)])
    reference = {key: np.array(value) for key, value in opt.state[w].items()}
    opt.state[w] = opt.state[w]
    assert {key: np.array(value) for key, value in opt.state[w].items()}.keys() == reference.keys()
    opt.state[w] |= {"exp_avg": np.zeros(3)}
    assert int(opt.state[w]["step"]) == 2
    np.testing.assert_array_equal(opt.state[w]["exp_avg"], np.zeros(3))
    np.testing.assert_array_equal(opt.state[w]["exp_avg_sq"], reference["exp_avg_sq"])
