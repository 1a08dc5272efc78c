import torch
import nnsight
clean = "The Eiffel Tower is in the city of"
corrupt = "The Colosseum is in the city of Rome and"
with model.trace(clean):
    clean_hs = nnsight.save([model.transformer.h[l].output[0] for l in range(4)])
    clean_logits = model.lm_head.output[0, -1].save()
target = clean_logits.argmax().item()
results = []
for layer in range(4):
    row = []
    for pos in [-1, -2, -3]:
        with model.trace(corrupt):
            model.transformer.h[layer].output[0][:, pos] = clean_hs[layer][:, pos]
            p = model.lm_head.output[0, -1].softmax(-1)[target].save()
        row.append(round(p.item(), 4))
    results.append(row)
print(target)
for r in results:
    print(r)
