import torch
with model.trace("The Eiffel Tower is in the city of"):
    logits = model.lm_head.output[0, -1]
    z = torch.zeros_like(logits).save()
    o = torch.ones_like(logits[:5]).save()
    f = torch.full_like(logits[:3], 2.5).save()
    probs = torch.softmax(logits, dim=-1)
    lp = torch.log_softmax(logits, dim=-1)[:5].save()
    top = probs.topk(3)
    values = top.values.save()
    indices = top.indices.save()
    v2, i2 = torch.topk(logits, 4, dim=-1)
    v2 = v2.save()
    i2 = i2.save()
    p5 = probs[:5].save()
    fp = torch.nn.functional.softmax(logits[:6], dim=0).save()
