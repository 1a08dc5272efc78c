acts = {}
with model.trace("Hello world"):
    for name in ["a", "b"]:
        layer = 0 if name == "a" else 2
        acts[name] = model.transformer.h[layer].output[0][0, -1].save()
    stats = {"mean": model.lm_head.output.mean().item(), "n": model.lm_head.output.shape[1]}
    print(sorted(stats.keys()), stats["n"])
    print(f"mean {stats['mean']:.4f}")
a = acts["a"]
b = acts["b"]
print(list(acts.keys()))
