import torch
import torch.nn.functional as F
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    kls = [].save()
    tops = [].save()
    for step in tracer.iter[0:3]:
        lenses = []
        for layer in range(4):
            h = model.transformer.h[layer].output[0][0, -1]
            lenses.append(model.lm_head(model.transformer.ln_f(h)).log_softmax(-1))
        final = model.lm_head.output[0, -1].log_softmax(-1)
        for lens in lenses:
            kls.append(F.kl_div(lens, final, reduction="sum", log_target=True))
            tops.append(lens.topk(2).indices)
print(len(kls), [round(k.item(), 3) for k in kls])
print(torch.stack(tops).tolist())
