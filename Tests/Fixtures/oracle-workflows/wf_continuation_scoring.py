import torch
prompt = "The Eiffel Tower is in the city of"
options = [" Paris", " Rome", " London"]
scores = []
for opt in options:
    ids = model.tokenizer.encode(prompt + opt)
    n_prompt = len(model.tokenizer.encode(prompt))
    with model.trace(prompt + opt):
        logp = model.lm_head.output[0].log_softmax(-1).save()
    total = 0.0
    for i in range(n_prompt, len(ids)):
        total += logp[i - 1, ids[i]].item()
    scores.append(round(total, 4))
print(scores, options[scores.index(max(scores))])
