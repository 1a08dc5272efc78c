ids = model.tokenizer("The Eiffel Tower is in the city of", return_tensors="pt")["input_ids"]
with model.generate(ids, max_new_tokens=4) as tracer:
    out = model.generator.output.save()
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    same = model.generator.output.save()
print(out.shape, (out == same).all().item())
print(model.tokenizer.batch_decode(out[:, -4:]))
