import streamlit as st

st.title("Hello from Streamlit")
name = st.text_input("Your name", "world")
st.write(f"Hi {name}!")
