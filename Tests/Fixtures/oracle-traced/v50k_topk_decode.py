import torch
with model.trace("Hello world, my name is"):
    probs = torch.softmax(model.lm_head.output[0, -1], dim=-1)
    top = probs.topk(5)
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"{model.tokenizer.decode([i])!r}: {p:.4f}")
    best = top.indices.save()
    pbest = top.values.save()
print(best.tolist())
