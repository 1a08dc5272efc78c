words = []
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    for step in tracer.iter[:4]:
        tok = model.lm_head.output[0, -1].argmax(dim=-1)
        word = model.tokenizer.decode(tok)
        print(f"{step}: {word!r}")
        words.append(word)
    out = model.generator.output.save()
print(model.tokenizer.decode(out[0]))
print(words)
