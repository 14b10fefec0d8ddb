"""The v2 store's write path: parents, conflicts and errors as etcd's store package has them."""

from __future__ import annotations

import pytest

from etcdsec.honeypot.v2.keystore import V2Error, V2Store


def test_set_creates_missing_parents_with_the_writes_index() -> None:
    store = V2Store(start_index=10)
    event, created = store.set("/a/b/c", "v")
    assert created and event["node"] == {"key": "/a/b/c", "value": "v", "modifiedIndex": 11, "createdIndex": 11}
    assert store.get("/a")["node"]["createdIndex"] == 11 and store.get("/a/b")["node"]["dir"] is True
    event, created = store.set("/a/b/c", "w")
    assert not created and event["prevNode"]["value"] == "v" and event["node"]["modifiedIndex"] == 12


def test_a_file_in_the_path_is_not_a_directory_and_nothing_is_created() -> None:
    store = V2Store()
    store.set("/f", "file")
    with pytest.raises(V2Error) as err:
        store.set("/f/x/y", "v")
    assert err.value.code == 104
    keys_before = store.keys
    with pytest.raises(V2Error) as err:
        store.set("/new/dir/key", "v", prev_exist=True)  # update of a missing key: parents stay uncreated
    assert err.value.code == 100 and store.keys == keys_before
    with pytest.raises(V2Error):
        store.get("/new")


def test_conflicts_with_existing_nodes() -> None:
    store = V2Store()
    store.set("/d/k", "v")
    with pytest.raises(V2Error) as err:
        store.set("/d", "v")  # a directory cannot become a file
    assert err.value.code == 102
    with pytest.raises(V2Error) as err:
        store.set("/d/k", "v", prev_exist=False)
    assert err.value.code == 105
    with pytest.raises(V2Error) as err:
        store.set("/", "v")
    assert err.value.code == 107
    event, _ = store.set("/d/k", "w", prev_value="v")
    assert event["action"] == "compareAndSwap"
