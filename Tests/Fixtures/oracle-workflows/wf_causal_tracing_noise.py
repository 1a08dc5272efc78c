import torch
torch.manual_seed(1)
prompt = "The Eiffel Tower is in the city of"
with model.trace(prompt):
    clean = [].save()
    for l in range(4):
        clean.append(model.transformer.h[l].output[0])
    p_clean = model.lm_head.output[0, -1].softmax(-1).save()
target = p_clean.argmax().item()
noise = torch.randn(1, 3, 64) * 0.5
restored = []
for l in range(4):
    with model.trace(prompt):
        model.transformer.wte.output[:, :3] += noise
        model.transformer.h[l].output[0][:, -1] = clean[l][:, -1]
        restored.append(model.lm_head.output[0, -1].softmax(-1)[target].save())
with model.trace(prompt):
    model.transformer.wte.output[:, :3] += noise
    p_noised = model.lm_head.output[0, -1].softmax(-1)[target].save()
print(round(p_clean[target].item(), 4), round(p_noised.item(), 4), [round(r.item(), 4) for r in restored])
