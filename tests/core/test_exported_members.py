"""The public face: exactly what __all__ lists, sorted, each importable."""

import fanfetch


def test_all_is_sorted_and_every_name_exists():
    assert fanfetch.__all__ == sorted(fanfetch.__all__)
    for name in fanfetch.__all__:
        assert hasattr(fanfetch, name), name


def test_public_names_do_not_leak_private_modules():
    public = {n for n in dir(fanfetch) if not n.startswith("_")}
    assert public - set(fanfetch.__all__) == set()
