"""The vLLM plugin for machines without torchvision: active only there, and complete there."""

import sys

import vlm.vllm_cpu as plugin


def test_plugin_does_nothing_where_torchvision_imports(monkeypatch):
    from vllm import ModelRegistry

    monkeypatch.setattr(plugin, "torchvision_available", lambda: True)
    before = ModelRegistry.models[plugin.QWEN2_5_VL_ARCHITECTURE]
    modules = dict(sys.modules)
    plugin.register()
    assert ModelRegistry.models[plugin.QWEN2_5_VL_ARCHITECTURE] is before
    assert set(sys.modules) == set(modules)


def test_plugin_gives_vllm_an_importable_smart_resize_and_our_processor(monkeypatch):
    from vllm import ModelRegistry

    monkeypatch.setattr(plugin, "torchvision_available", lambda: False)
    plugin.register()
    # What vLLM's Qwen2-VL module imports now imports, whether or not torchvision exists.
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    assert smart_resize(56, 84, factor=28) == (56, 84)
    registered = ModelRegistry.models[plugin.QWEN2_5_VL_ARCHITECTURE]
    assert (registered.module_name, registered.class_name) == ("vlm.vllm_image_only", "ImageOnlyQwen2_5_VL")
    # The same model class underneath; only its processor differs (the conformance tests run it).
    from vlm.vllm_image_only import ImageOnlyQwen2_5_VL

    assert ImageOnlyQwen2_5_VL.__mro__[1].__name__ == plugin.QWEN2_5_VL_ARCHITECTURE
