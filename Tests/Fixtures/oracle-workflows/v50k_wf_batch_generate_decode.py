prompts = ["The weather today is", "My favourite food is pizza because"]
with model.generate(prompts, max_new_tokens=4) as tracer:
    first = model.lm_head.output[:, -1].argmax(-1).save()
    out = tracer.result.save()
for row in out:
    print(repr(model.tokenizer.decode(row[-4:])))
print(first.tolist(), out.shape)
