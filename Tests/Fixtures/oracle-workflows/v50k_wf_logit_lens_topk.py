import torch
prompt = "The capital of France is"
with model.trace(prompt):
    rows = [].save()
    for layer in range(3):
        h = model.transformer.h[layer].output[0][0, -1]
        probs = model.lm_head(model.transformer.ln_f(h)).softmax(-1)
        rows.append(probs.topk(3))
for layer, (values, indices) in enumerate(rows):
    print(layer, [model.tokenizer.decode(i) for i in indices.tolist()], [round(v, 4) for v in values.tolist()])
