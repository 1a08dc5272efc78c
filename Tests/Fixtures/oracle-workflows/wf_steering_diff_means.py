import torch
pos_prompts = ["I love this movie", "What a wonderful day", "This is great"]
neg_prompts = ["I hate this movie", "What a terrible day", "This is awful"]
def mean_act(prompts, layer):
    acts = []
    for p in prompts:
        with model.trace(p):
            a = model.transformer.h[layer].output[0][0, -1].save()
        acts.append(a)
    return torch.stack(acts).mean(dim=0)
steer = mean_act(pos_prompts, 2) - mean_act(neg_prompts, 2)
print(steer.shape, round(steer.norm().item(), 4))
with model.generate("The film was", max_new_tokens=4) as tracer:
    for step in tracer.iter[0:4]:
        model.transformer.h[2].output[0][:, -1] += 4.0 * steer
    out = tracer.result.save()
with model.generate("The film was", max_new_tokens=4) as tracer:
    base = tracer.result.save()
print(out[0].tolist(), base[0].tolist())
